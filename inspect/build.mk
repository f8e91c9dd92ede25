# inspect/: included by the top-level Makefile.
