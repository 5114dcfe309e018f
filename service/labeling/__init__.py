"""Bulk labeling (``weakseg label``): weak labels per image in -> COCO segmentation, masks/ and a
review page out, through a live server's SegmentStream.

inputs (data-set folder or COCO detection file -> items) -> run (bounded window, retries,
journal) -> coco_out (annotations.json) + review_page (review.html).
"""
