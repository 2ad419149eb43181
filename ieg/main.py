r"""Train or evaluate a classifier on noisy labels.

  python -m ieg.main --dataset=cifar10_asymmetric_0.4 --method=sigua
  python -m ieg.main --dataset=digits_uniform_0.4 --method=supervised --network_name=mnist_cnn \
      --max_iteration=300 --eval_freq=100 --checkpoint_path=/tmp/runs
  python -m ieg.main ... --mode=evaluation

Exit status: 0 done; 1 nothing to evaluate (no readable checkpoint); 2 a setting, file or folder to
fix (one line on stderr); 3 the loss became NaN/Inf (the last good checkpoint is kept); 75 stopped
by SIGTERM/Ctrl-C after saving a checkpoint: run the same command again to resume.
"""
import logging
import sys

from ieg import quiet_import

_HAS_GPU = quiet_import.import_tensorflow()

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from core.errors import UserError  # pylint: disable=g-import-not-at-top,wrong-import-position
from ieg import experiment  # pylint: disable=g-import-not-at-top,wrong-import-position
from ieg import flags as ieg_flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from ieg.run import interrupts  # pylint: disable=g-import-not-at-top,wrong-import-position

ieg_flags.define_flags()


def parse_flags(argv):
  """absl parsing, but a bad flag is one line on stderr and exit status 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f"error: {e} (python -m ieg.main --helpfull lists every flag and its type)", file=sys.stderr)
    sys.exit(2)


def main(argv):
  if len(argv) > 1:
    print(f"error: unexpected arguments {' '.join(argv[1:])}: every setting is a --flag", file=sys.stderr)
    sys.exit(2)
  logging.getLogger().setLevel(logging.INFO)
  try:
    experiment.run(ieg_flags.read_config())
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
  except interrupts.Interrupted as e:
    print(str(e), file=sys.stderr)
    sys.exit(e.exit_code)


if __name__ == "__main__":
  quiet_import.filter_native_stderr(_HAS_GPU)
  app.run(main, flags_parser=parse_flags)
