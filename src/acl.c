/* acl.c - stub, to be written */
