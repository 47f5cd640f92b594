"""Pure rules of the domain: no database, no Flask. Tested without I/O."""
