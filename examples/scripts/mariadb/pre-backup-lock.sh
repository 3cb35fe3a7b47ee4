#!/bin/bash
# pre-backup-lock <database>: mariadb-dump --single-transaction reads one consistent snapshot of
# InnoDB tables, so nothing is locked. (MyISAM tables would need FLUSH TABLES WITH READ LOCK
# held by a session for the whole dump.)
echo "no lock needed for a single-transaction dump (database $1)"
