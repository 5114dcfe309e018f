"""The pipeline, stage by stage (plain values in and out; no protobuf):

image -> weak_labels -> cam -> prompts -> sam_masks -> aggregation -> refinement -> encoding
(-> evaluation with a ground truth). ``segment`` runs them in order; ``predict`` runs DeepLab.
"""
