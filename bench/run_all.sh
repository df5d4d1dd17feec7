#!/bin/bash
# Run the performance benchmarks on a quiet machine; each one's output is kept under results/benchmark/ (device in the name)
set -e
cd "$(dirname "$0")/.."
dev=$(python -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
noise="█\|Better model\|Epoch [0-9]\|^[0-9] \+[0-9.]\+ \+[0-9.]"  # progress bars and per-epoch logs
for b in throughput linear_probe latency_check channels_last bf16; do
  { echo "# bench/$b.py on $(hostname), $(nproc) cores, $(date -u +%FT%TZ)"; python bench/$b.py 2>&1; } | grep -av "$noise" | tee results/benchmark/${b}_${dev}.txt
done
python bench/scaling.py | tee results/benchmark/scaling_${dev}.txt
