"""Stage `text` (workflow/rules/text.smk): dialogs to token ids (`visdial-lg vocab`, `glove`,
`tokenize`; docs/text.md).

- `visdial`: reading and validating VisDial JSON and dense annotations
- `options_json`: the fast reader of the answer-option arrays
- `tokenizer`: NLTK's word tokenization without NLTK data
- `vocab`: the vocabulary and its GloVe-initialised embedding
- `tokens`: one split into the tokens HDF5
"""
