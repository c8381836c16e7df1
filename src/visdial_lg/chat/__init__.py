"""`visdial-lg chat`: a dialog with a trained run about your own image (docs/chat.md). Not a
stage of the DAG: it reads a finished pipeline folder (checkpoint, vocabulary, train tokens
and train features).

- `files`: the run's files in the pipeline folder (core/paths.py's patterns)
- `regions`: one image's regions, extracted as the run's train features were
- `answers`: the train answer pool and its scores by the run's decoder, in chunks
- `dialog`: the dialog session: each round's batch from the history, answers and regions
- `figure`: each round's top regions, one row per round (Figure 4's drawing)
- `terminal`: the command: the interactive loop, a questions file answered as JSON
"""
