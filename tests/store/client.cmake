# Client suites.
