"""Data: the face-set contract (splits of uint8 48x48 faces) and its sources: synthetic faces,
FER2013's CSV, a folder of images."""
