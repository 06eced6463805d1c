"""A data module that ends its process with SystemExit, as some libraries do on bad input."""

from imgcls.data.digits import DigitsDataModule


class SystemExitingDigits(DigitsDataModule):
    def load_splits(self):
        raise SystemExit("this job called sys.exit()")
