/* spool.c - stub, to be written */
