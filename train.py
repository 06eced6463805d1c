"""Train an image classifier: ``python train.py [group=option ...] [key=value ...]``.

See conf/train.yaml for every option; ``python train.py --help`` lists the groups.
"""

from imgcls.commands.train import run

if __name__ == "__main__":
    run()
