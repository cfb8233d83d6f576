#!/usr/bin/env bash
# Issue 5's accuracy table: the Table 1 network on the CIFAR-10 subset (train data_batch_1..4, validate
# on data_batch_5), 50 epochs, one run after another (a GPU time-slices concurrent runs, so running
# them side by side saves no device time). Each run resumes from its checkpoint, so the script can be
# run again after an interruption; finished runs (a CSV row for epoch 50) are skipped.
#
#   bench/opencl/accuracy_table.sh DATA_DIR [OUT_DIR]
# Environment: TRAIN_VGG (default build/examples/train_vgg), RUNS (default: every scheme and format at
# batch 32, then prog fixed8 at batch 8, as scheme:format:batch), DEADLINE (seconds after which no run
# starts and a running one is stopped at its last checkpoint; default none), PBNN_OPENCL_DEVICE.
set -u
data=${1:?usage: accuracy_table.sh DATA_DIR [OUT_DIR]}
out=${2:-accuracy_table}
train_vgg=${TRAIN_VGG:-build/examples/train_vgg}
mkdir -p "$out"
if [ -z "${RUNS:-}" ]; then
  RUNS=""
  for s in float det bnn stoch prog; do for f in fp32 fixed16 fixed8; do RUNS="$RUNS $s:$f:32"; done; done
  RUNS="$RUNS prog:fixed8:8"
fi
start=$(date +%s)
for run in $RUNS; do
  IFS=: read -r scheme format batch <<< "$run"
  name=${scheme}_${format}_b${batch}
  grep -q "^50," "$out/$name.csv" 2>/dev/null && continue
  limit=""
  if [ -n "${DEADLINE:-}" ]; then
    left=$(( DEADLINE - ($(date +%s) - start) ))
    [ "$left" -lt 20 ] && break
    limit="timeout $left"
  fi
  resume=""; [ -f "$out/$name.ckpt" ] && resume="--resume"
  t0=$(date +%s)
  $limit "$train_vgg" --backend opencl --data "$data" --train-batches 1-4 --val-batches 5 --scheme "$scheme" \
    --format "$format" --epochs 50 --batch "$batch" --quiet --csv "$out/$name.csv" --out "$out/$name.safetensors" \
    --checkpoint "$out/$name.ckpt" $resume > "$out/$name.log" 2>&1
  echo "$name: $(( $(date +%s) - t0 )) s, last row: $(tail -1 "$out/$name.csv" 2>/dev/null)"
done
