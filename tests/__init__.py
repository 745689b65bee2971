"""The test suite (a package, so that tests/ddsolve and tests/particles never shadow the packages they test)."""
