"""Builders shared by several test modules (no test module imports another):

- `synthetic`: tiny train inputs (tokens, features, vocabulary) in the pipeline's formats
- `tiny_data`: a tiny model/train config and dataset for seconds-long CPU runs
- `tiny_runs`: two tiny trained runs (LTMI gen, LTMI-LG multi) and their evaluations
- `model_batches`: model configs and hand-made batches for the model tests
- `visdial_json`: VisDial-format dialogs JSON
- `ltmi_file`: a feature file in the released LTMI code's layout
- `images`: test images and every kind of bad image file
- `paper_tables`: checks of a rendered paper table
- `snakemake_output`: the jobs a Snakemake run planned
"""
