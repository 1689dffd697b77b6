"""Video files, image folders, cameras and streams through the Detector (see pipeline.py)."""
