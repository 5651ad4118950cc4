#!/usr/bin/env bash
# Source me: preload jemalloc (or tcmalloc) for the Python processes started after this, when the library is
# installed (Debian: libjemalloc2, libtcmalloc-minimal4). glibc's malloc keeps freed activations in its heap;
# jemalloc returns them, so a CPU train step's peak RSS is lower (README, "Speed and memory").
# OFA_ALLOCATOR=system keeps glibc's malloc; an LD_PRELOAD already set is left as it is.
if [ -z "${LD_PRELOAD:-}" ] && [ "${OFA_ALLOCATOR:-auto}" != system ]; then
    for _lib in libjemalloc.so.2 libtcmalloc_minimal.so.4; do
        for _dir in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
            if [ -f "$_dir/$_lib" ]; then
                export LD_PRELOAD="$_dir/$_lib"
                break 2
            fi
        done
    done
    unset _lib _dir
fi
