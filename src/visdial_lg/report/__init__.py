"""Stage `report` (workflow/rules/report.smk): the paper's tables and figures
(`visdial-lg table`, `tables-markdown`, `figure`, `explorer`; docs/evaluation.md).

- `tables`: Tables 1-7 as CSV and Markdown; `ROWS` and `table_inputs` say which results feed each
- `figures`: Figure 4 (top-3 regions per question) and Figure 5 (example dialogs)
- `explorer`: the dialog explorer, a static page of sampled val dialogs (`resources/explorer/`)
"""
