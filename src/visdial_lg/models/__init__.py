"""The models: LTMI and LTMI-LG (paper Eq. 1-11; docs/model.md), built by `ltmi.build_model`.

- `encoders`: question, answer, history and region encoders
- `attention`: the LTMI attention block
- `grounding`: distributions over regions (LTMI's pooling, LG's prior and posterior) and the image summary
- `decoders`: generative and discriminative decoders and their losses
- `common`: masks and small blocks shared by the above
- `ltmi`: the assembled model and `visdial-lg model-info`
"""
