-- Items and their reviews. The per-item summary (review_count, rating_sum) is kept on the item row and updated in
-- the same transaction as each review insert: listing and sorting by rating never aggregates the reviews table,
-- and the row lock on the item serialises concurrent reviews so the counts cannot drift.
CREATE TABLE items (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description  TEXT        NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    review_count BIGINT      NOT NULL DEFAULT 0 CHECK (review_count >= 0),
    rating_sum   BIGINT      NOT NULL DEFAULT 0 CHECK (rating_sum >= 0)
);

CREATE TABLE reviews (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    item_id    BIGINT      NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    author     TEXT        NOT NULL CHECK (char_length(author) BETWEEN 1 AND 100),
    rating     SMALLINT    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body       TEXT        NOT NULL DEFAULT '' CHECK (char_length(body) <= 5000),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One index per sort the API offers; `id` breaks ties so pagination is stable.
CREATE INDEX items_created_at_idx ON items (created_at, id);
CREATE INDEX items_name_idx ON items (name, id);
CREATE INDEX items_review_count_idx ON items (review_count, id);
CREATE INDEX items_rating_idx ON items ((rating_sum::float8 / NULLIF(review_count, 0)), id);
CREATE INDEX reviews_item_created_idx ON reviews (item_id, created_at DESC, id DESC);
