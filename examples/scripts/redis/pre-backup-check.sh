#!/bin/bash
# pre-backup-check <database>: there is room for the snapshot (the server is checked by backup).
df -h . | tail -1
