ALTER TABLE public.items ADD COLUMN price numeric(10,2);
UPDATE public.items SET price = price_cents / 100.0;
ALTER TABLE public.items ALTER COLUMN price SET NOT NULL;
-- legacy_code is the last column: a column dropped and brought back by a
-- revert comes back at the end of the column list (a documented limit).
ALTER TABLE public.items DROP COLUMN legacy_code;
UPDATE public.items SET name = initcap(name);
DELETE FROM public.items WHERE name = 'Plum';
INSERT INTO public.items (name, price_cents, price) VALUES ('Kiwi', 95, 0.95);
CREATE TABLE public.item_tags (
    item_id integer NOT NULL REFERENCES public.items (id),
    tag     text    NOT NULL,
    PRIMARY KEY (item_id, tag)
);
INSERT INTO public.item_tags
SELECT id, 'fruit' FROM public.items;
