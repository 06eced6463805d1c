"""Evaluate a checkpoint and write its report: ``python evaluate.py ckpt_path=... [data=...]``.

See conf/evaluate.yaml for the options.
"""

from imgcls.commands.evaluate import main

if __name__ == "__main__":
    main()
