"""The detection task's machinery beside its models: COCO-style scoring, scene data with region
proposals, the SVM stage of R-CNN and SPPNet, and answering for image files."""
