"""The demo shop's products, written as a merchant would enter them in the Shopify admin.

app/dev/catalog.py turns them into Admin GraphQL nodes; every case a shopper's question can
meet is here: sizes and colours, a sold-out size, a product sold out in every variant, sale
prices, cheap accessories, a draft, an archived product and one not on the Online Store.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoProduct:
    handle: str
    title: str
    product_type: str
    price: str
    description: str
    colours: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    compare_at: str | None = None
    status: str = "ACTIVE"
    published: bool = True
    # "Size / Colour" titles of the variants that are sold out; "*" for every one.
    sold_out: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


ADULT = ("S", "M", "L", "XL")
SOCKS = ("S (36-39)", "M (40-43)", "L (44-47)")

COLOURS = {
    "Oatmeal": "#d8c8ae",
    "Navy": "#2c3e5c",
    "Charcoal": "#4a4a4a",
    "Cream": "#efe6d2",
    "Forest": "#2f5d3a",
    "Rust": "#b5532d",
    "Camel": "#c19a6b",
    "Black": "#262626",
    "White": "#f4f4f2",
    "Heather Grey": "#a9a9a9",
    "Burgundy": "#7a2335",
    "Mustard": "#d1a12a",
    "Sky": "#8fb8de",
    "Olive": "#6b6b3a",
    "Red": "#b8342f",
    "Stone": "#b3a89a",
}

PRODUCTS: tuple[DemoProduct, ...] = (
    # Sweaters
    DemoProduct(
        "merino-crew-sweater", "Merino Crew Sweater", "Sweaters", "89.00",
        "Soft, breathable extra-fine merino wool in a relaxed fit. Machine washable.",
        ("Oatmeal", "Navy", "Charcoal"), ADULT,
        sold_out=("S / Charcoal", "XL / Navy"), tags=("merino", "wool", "bestseller"),
    ),
    DemoProduct(
        "cashmere-v-neck-sweater", "Cashmere V-Neck Sweater", "Sweaters", "119.00",
        "Two-ply Mongolian cashmere, light enough for layering. Hand wash cold.",
        ("Camel", "Navy", "Burgundy"), ADULT, compare_at="149.00", tags=("cashmere", "sale"),
    ),
    DemoProduct(
        "fisherman-cable-knit-sweater", "Fisherman Cable Knit Sweater", "Sweaters", "129.00",
        "A heavy Aran cable knit in undyed British wool. Warm enough for a coastal winter.",
        ("Cream", "Forest"), ADULT, sold_out=("XL / Forest",), tags=("wool", "chunky"),
    ),
    DemoProduct(
        "alpaca-turtleneck", "Alpaca Turtleneck", "Sweaters", "139.00",
        "Baby alpaca blend with a fold-over neck. Itch-free and very warm.",
        ("Stone", "Black"), ADULT, tags=("alpaca",),
    ),
    DemoProduct(
        "breton-cotton-sweater", "Breton Cotton Sweater", "Sweaters", "69.00",
        "A striped boat-neck in heavy organic cotton, for spring evenings.",
        ("Navy", "Red"), ADULT, tags=("cotton", "organic"),
    ),
    DemoProduct(
        "lambswool-cardigan", "Lambswool Cardigan", "Sweaters", "99.00",
        "Next season's cardigan: still being photographed.",
        ("Oatmeal", "Olive"), ADULT, status="DRAFT", tags=("lambswool",),
    ),
    DemoProduct(
        "shetland-crew-sweater", "Shetland Crew Sweater", "Sweaters", "95.00",
        "Last winter's Shetland crew, no longer made.",
        ("Heather Grey",), ADULT, status="ARCHIVED", tags=("wool",),
    ),
    DemoProduct(
        "sample-sale-sweater", "Sample Sale Sweater", "Sweaters", "40.00",
        "A one-off sample, sold in the shop only, not online.",
        ("Mustard",), ("M",), published=False,
    ),
    # Beanies
    DemoProduct(
        "ribbed-merino-beanie", "Ribbed Merino Beanie", "Beanies", "24.00",
        "A close-fitting rib knit beanie in soft merino. One size.",
        ("Charcoal", "Mustard", "Navy", "Rust"), tags=("merino", "under-30"),
    ),
    DemoProduct(
        "cashmere-beanie", "Cashmere Beanie", "Beanies", "45.00",
        "Pure cashmere with a turned-up cuff. One size.",
        ("Camel", "Heather Grey"), tags=("cashmere",),
    ),
    DemoProduct(
        "pom-pom-beanie", "Pom-Pom Beanie", "Beanies", "19.00",
        "A chunky beanie topped with a recycled faux-fur pom-pom.",
        ("Cream", "Burgundy", "Sky"), sold_out=("Sky",), tags=("under-30",),
    ),
    DemoProduct(
        "fisherman-beanie", "Fisherman Beanie", "Beanies", "22.00",
        "A short, shallow docker beanie in lambswool.",
        ("Olive", "Rust", "Black"), tags=("lambswool", "under-30"),
    ),
    DemoProduct(
        "kids-merino-beanie", "Kids' Merino Beanie", "Beanies", "16.00",
        "Our ribbed beanie in a child's size, for ages 3 to 10.",
        ("Red", "Sky"), tags=("kids", "merino", "under-30"),
    ),
    # Scarves
    DemoProduct(
        "lambswool-scarf", "Lambswool Scarf", "Scarves", "39.00",
        "A fringed scarf woven in Scotland, 180 by 30 cm.",
        ("Camel", "Navy", "Forest"), tags=("lambswool",),
    ),
    DemoProduct(
        "cashmere-scarf", "Cashmere Scarf", "Scarves", "79.00",
        "A generous cashmere wrap, 200 by 70 cm.",
        ("Oatmeal", "Charcoal"), tags=("cashmere", "gift"),
    ),
    DemoProduct(
        "chunky-knit-scarf", "Chunky Knit Scarf", "Scarves", "49.00",
        "A hand-knitted chunky scarf. Sold out until the next batch.",
        ("Cream", "Heather Grey"), sold_out=("*",), tags=("hand-knit",),
    ),
    DemoProduct(
        "tartan-scarf", "Tartan Wool Scarf", "Scarves", "42.00",
        "A classic tartan in soft lambswool.",
        ("Red", "Forest"), compare_at="55.00", tags=("sale", "lambswool"),
    ),
    DemoProduct(
        "lambswool-snood", "Lambswool Snood", "Scarves", "34.00",
        "A loop scarf that stays put on windy days.",
        ("Charcoal", "Mustard"), tags=("lambswool",),
    ),
    # Socks
    DemoProduct(
        "merino-hiking-socks", "Merino Hiking Socks", "Socks", "18.00",
        "Cushioned merino socks for long walks. Reinforced heel and toe.",
        ("Charcoal", "Forest"), SOCKS, tags=("merino", "under-30", "outdoor"),
    ),
    DemoProduct(
        "wool-boot-socks", "Wool Boot Socks", "Socks", "22.00",
        "Thick, tall socks for boots and cold floors.",
        ("Oatmeal", "Rust"), SOCKS, sold_out=("L (44-47) / Rust",), tags=("wool", "under-30"),
    ),
    DemoProduct(
        "everyday-crew-socks-3-pack", "Everyday Crew Socks (3-Pack)", "Socks", "26.00",
        "Three pairs of organic cotton crew socks.",
        ("Black", "White"), SOCKS, tags=("cotton", "under-30"),
    ),
    DemoProduct(
        "cashmere-bed-socks", "Cashmere Bed Socks", "Socks", "35.00",
        "Loose, soft cashmere socks for lazy Sundays. One size.",
        ("Heather Grey", "Camel"), tags=("cashmere", "gift"),
    ),
    # Jackets
    DemoProduct(
        "waxed-cotton-jacket", "Waxed Cotton Jacket", "Jackets", "229.00",
        "A weatherproof waxed jacket with a corduroy collar and a tartan lining.",
        ("Olive", "Navy"), ADULT, tags=("outerwear", "waterproof"),
    ),
    DemoProduct(
        "quilted-liner-jacket", "Quilted Liner Jacket", "Jackets", "149.00",
        "A light diamond-quilted jacket, on its own or under a coat.",
        ("Black", "Olive"), ADULT, compare_at="179.00", tags=("outerwear", "sale"),
    ),
    DemoProduct(
        "wool-chore-coat", "Wool Chore Coat", "Jackets", "189.00",
        "A boxy four-pocket chore coat in boiled wool.",
        ("Charcoal", "Camel"), ADULT, sold_out=("S / Camel", "M / Camel"), tags=("wool",),
    ),
    DemoProduct(
        "down-puffer-jacket", "Down Puffer Jacket", "Jackets", "249.00",
        "Responsibly sourced down, packs into its own pocket.",
        ("Black", "Forest", "Rust"), ADULT, tags=("outerwear", "down"),
    ),
    # T-shirts
    DemoProduct(
        "organic-cotton-tee", "Organic Cotton T-Shirt", "T-Shirts", "29.00",
        "A mid-weight everyday tee in organic cotton. Pre-shrunk.",
        ("White", "Black", "Heather Grey"), ("XS", *ADULT), tags=("cotton", "under-30"),
    ),
    DemoProduct(
        "merino-tee", "Merino T-Shirt", "T-Shirts", "55.00",
        "A fine merino tee that stays fresh for days. Good for travel.",
        ("Black", "Navy"), ADULT, tags=("merino", "travel"),
    ),
    DemoProduct(
        "long-sleeve-henley", "Long Sleeve Henley", "T-Shirts", "45.00",
        "A waffle-knit cotton henley with a three-button placket.",
        ("Oatmeal", "Forest"), ADULT, tags=("cotton",),
    ),
    DemoProduct(
        "pocket-tee", "Pocket T-Shirt", "T-Shirts", "25.00",
        "A relaxed tee with a chest pocket.",
        ("White", "Sky", "Mustard"), ADULT, compare_at="32.00", tags=("cotton", "sale"),
    ),
    # Gloves
    DemoProduct(
        "merino-touchscreen-gloves", "Merino Touchscreen Gloves", "Gloves", "28.00",
        "Thin merino gloves with touchscreen fingertips.",
        ("Black", "Charcoal"), ("S/M", "L/XL"), tags=("merino", "under-30"),
    ),
    DemoProduct(
        "alpaca-fingerless-gloves", "Alpaca Fingerless Gloves", "Gloves", "26.00",
        "Fingerless alpaca gloves for cold offices. One size.",
        ("Stone", "Burgundy"), tags=("alpaca", "under-30"),
    ),
    DemoProduct(
        "leather-lined-mittens", "Leather Mittens", "Gloves", "42.00",
        "Lambskin mittens lined with cashmere.",
        ("Black", "Camel"), ("S/M", "L/XL"), tags=("leather", "gift"),
    ),
)  # fmt: skip

POLICIES: tuple[tuple[str, str, str], ...] = (
    (
        "REFUND_POLICY",
        "Refund policy",
        "<p>You can return unworn items within <strong>30 days</strong> of delivery for a full "
        "refund. Start a return from the link in your order confirmation email.</p>"
        "<p>Sale items can be exchanged but not refunded.</p>",
    ),
    (
        "SHIPPING_POLICY",
        "Shipping policy",
        "<p>Orders ship within 1–2 business days. Standard delivery takes 3–5 business days, "
        "express 1–2.</p><p>Shipping is free on orders over $50; below that, standard shipping "
        "is $4.95 and express is $12.</p>",
    ),
    (
        "PRIVACY_POLICY",
        "Privacy policy",
        "<p>We collect what we need to fulfil your order: your name, address, email and what "
        "you bought. We never sell your data.</p>",
    ),
    (
        "TERMS_OF_SERVICE",
        "Terms of service",
        "<p>By placing an order you agree to pay the price shown at checkout. Prices are in US "
        "dollars and include no taxes.</p>",
    ),
    (
        "CONTACT_INFORMATION",
        "Contact information",
        "<p>Demo Shop, 1 Wool Street, Portland, OR 97201, United States.</p>"
        "<p>Email hello@demo-shop.example, Monday to Friday 9am–5pm.</p>",
    ),
)
