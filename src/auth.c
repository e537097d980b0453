/* auth.c - stub, to be written */
