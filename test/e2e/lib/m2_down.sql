DROP TABLE public.item_tags;
DELETE FROM public.items WHERE name = 'Kiwi';
INSERT INTO public.items (id, name, price_cents, price) VALUES (3, 'Plum', 80, 0.80);
UPDATE public.items SET name = lower(name);
ALTER TABLE public.items ADD COLUMN legacy_code text;
UPDATE public.items SET legacy_code = CASE name WHEN 'apple' THEN 'A-1' WHEN 'pear' THEN 'P-2' END;
ALTER TABLE public.items DROP COLUMN price;
