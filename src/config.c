/* config.c - stub, to be written */
