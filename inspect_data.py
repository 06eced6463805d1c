"""Inspect a dataset: ``python inspect_data.py data=<name> [data.key=value ...]``.

Composes the same conf/ tree as train.py (conf/inspect.yaml); writes the report to
outputs/inspect/runs/<time>_<overrides>/ and its TensorBoard folder. See
imgcls/inspection/report.py for what it contains.
"""

from imgcls.commands.inspect_data import main

if __name__ == "__main__":
    main()
