-- Watch time is credited only up to the wall-clock time that passed: the moment up to which a learner's
-- playing of a video has been credited (NULL until the first report).
ALTER TABLE video_positions ADD COLUMN credited_until TEXT;
