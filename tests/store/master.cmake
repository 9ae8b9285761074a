# Master suites.
