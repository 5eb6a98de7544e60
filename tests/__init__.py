"""edgeloop test suite (a package so tests share helpers: ``tests.reference``)."""
