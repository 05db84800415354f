CREATE TABLE public.items (
    id          serial PRIMARY KEY,
    name        text    NOT NULL,
    price_cents integer NOT NULL,
    legacy_code text
);
CREATE INDEX items_name_idx ON public.items (name);
INSERT INTO public.items (name, price_cents, legacy_code)
VALUES ('apple', 120, 'A-1'), ('pear', 250, 'P-2'), ('plum', 80, NULL);
