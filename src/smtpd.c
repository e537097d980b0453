/* smtpd.c - stub, to be written */
