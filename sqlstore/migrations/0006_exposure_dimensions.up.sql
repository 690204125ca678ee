-- The dimensions of an exposure (experiments.Exposure.Dimensions: the
-- user attributes of Config.Dimensions, and the site) as a JSON object
-- of strings, at most 8 of them; results break participants down by one
-- (dimensions->>'browser'). Exposures recorded before have none.
ALTER TABLE experiments_exposures ADD COLUMN dimensions jsonb NOT NULL DEFAULT '{}';
