#!/usr/bin/env bash
# Runs the ten timed cases (run5.sh) only where the card is an H200; elsewhere it stops at once.
nvidia-smi -L
if ! nvidia-smi -L | grep -q H200; then echo "not an H200: stop"; exit 0; fi
bash run5.sh   # bench/results/2026-12-06d-decode/call5/run5.sh
