"""Dataset inspection: class counts, image sizes and modes, sample grids, data problems.

``python inspect_data.py data=<name>`` writes the report (see :mod:`imgcls.inspection.report`).
"""
