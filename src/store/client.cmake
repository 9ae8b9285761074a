# The store client library ferry_store (see CMakeLists.txt).
