#!/bin/bash
# pre-restore-lock <job_id>: nothing to lock; pg_restore --clean replaces the objects it restores.
echo "no lock (job $1)"
