"""Stage `demo` (workflow/rules/demo.smk): the synthetic grounded dataset that stands in for
VisDial + COCO on machines without data or GPU (`visdial-lg make-demo`, docs/demo.md).

- `make`: the entry point: ids, random streams, which image goes where, MANIFEST.json
- `scenes`, `render`: shapes on a canvas, and their JPEG
- `dialogs`, `answers`: captions, 10 grounded rounds per image, answers and their 100 options
- `layout`, `coco`: the VisDial JSON, dense, grounding and COCO-instances files
- `rehearsal`: the inputs of `make rehearsal` (the real config on tiny data)
- `regenerate`, `probe`, `evidence`: measurements on a finished demo run (the scenes rebuilt;
  the feature probe; answer types and the Tables 3-4 verdicts)
"""
