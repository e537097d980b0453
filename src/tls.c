/* tls.c - stub, to be written */
