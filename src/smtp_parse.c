/* smtp_parse.c - stub, to be written */
