#!/bin/bash
# post-restore-unlock: nothing was locked.
echo "nothing to unlock"
