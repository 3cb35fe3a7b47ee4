#!/bin/bash
# pre-backup-lock <database>: pg_dump reads one consistent snapshot, so nothing is locked.
echo "no lock needed for pg_dump (database $1)"
