/* smtpd_session.c - stub, to be written */
