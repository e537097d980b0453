/*
 * danerelay.c - the operator command-line tool (stub; being written by B).
 */
#include <stdio.h>

int
main(int argc, char *argv[])
{
	fprintf(stderr, "usage: danerelay [-c file] command\n");
	return 2;
}
