#!/bin/bash
# pre-backup-lock <database>: redis-cli --rdb takes a point-in-time snapshot; nothing to lock.
echo "no lock needed for an RDB snapshot"
