"""Stage `features` (workflow/rules/features.smk): bottom-up-attention region features into HDF5
(`visdial-lg extract`, `merge-features`, `import-features`; docs/extraction.md, docs/features.md).

- `extract`: images -> one feature shard, batched and resumable
- `images`: finding and decoding an image set's images as BUTD does; shards of the list
- `model`: the Faster R-CNN (preprocess, backbone, RPN, RoI heads, selection) and its builder
- `backbone`, `anchors`, `rpn`, `roi_heads`, `selection`: the network's parts, in order
- `weights`: reading the public weights pickle safely, its layout, random weights
- `store`: the feature file: layout, checks, the resumable partial file
- `reader`: rows of a feature file by image id, checked at open
- `merge`: shards into one file; an LTMI feature file into ours
"""
