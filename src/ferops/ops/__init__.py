"""Operations: the scheduled retraining flow, local services for scale-out, importing runs made
without tracking."""
