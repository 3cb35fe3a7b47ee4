#!/bin/bash
# restore <host> <username> <password> <database> <filename> <job_id> <compression> <encryption_key>
# Puts the snapshot in place of the server's RDB file and makes the server load it
# (DEBUG RELOAD NOSAVE: needs `enable-debug-command local` and the agent on the Redis VM).
source "$(dirname "$0")/lib.sh"
connect "$1" "$3"
file=$5 key=${8:-}
if [[ "$file" == *.enc ]]; then
  encrypting "$key" || { echo "$file is encrypted but the request has no encryption_key" >&2; exit 1; }
  decrypt "$file" "$key"
  file=${file%.enc}
fi
if [[ "$file" == *.gz ]]; then gunzip -f -- "$file"; file=${file%.gz}; fi
dir=$("${redis[@]}" --raw CONFIG GET dir | sed -n 2p)
name=$("${redis[@]}" --raw CONFIG GET dbfilename | sed -n 2p)
[ -d "$dir" ] || { echo "the server's dir $dir is not on this machine" >&2; exit 1; }
# copied beside the target and renamed: the server never sees half a file
cp -- "$file" "$dir/.$name.restore" && mv -f -- "$dir/.$name.restore" "$dir/$name"
reply=$("${redis[@]}" DEBUG RELOAD NOSAVE)
[ "$reply" = OK ] || { echo "DEBUG RELOAD answered: $reply (is enable-debug-command set to local?)" >&2; exit 1; }
echo "restored $file: $("${redis[@]}" DBSIZE) keys"
