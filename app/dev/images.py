"""The demo products' pictures: an SVG tile per product, drawn from its type and first colour,
so that the local storefront and the chat's product cards show something without a CDN."""

from __future__ import annotations

from html import escape

from app.dev.catalog_data import COLOURS, DemoProduct

# One silhouette per product type, on a 400 x 500 canvas.
SHAPES = {
    "Sweaters": "M120 120 L170 100 Q200 130 230 100 L280 120 L350 220 L315 245 L285 205 "
    "L285 390 L115 390 L115 205 L85 245 L50 220 Z",
    "T-Shirts": "M125 130 L170 110 Q200 135 230 110 L275 130 L330 180 L295 215 L275 195 "
    "L275 380 L125 380 L125 195 L105 215 L70 180 Z",
    "Jackets": "M120 110 L175 95 L200 150 L225 95 L280 110 L345 230 L310 250 L290 215 "
    "L290 400 L110 400 L110 215 L90 250 L55 230 Z M197 160 L203 160 L203 400 L197 400 Z",
    "Beanies": "M110 300 Q110 150 200 150 Q290 150 290 300 Z M100 300 L300 300 L300 350 "
    "L100 350 Z M185 150 a15 15 0 1 1 30 0 a15 15 0 1 1 -30 0",
    "Scarves": "M150 100 L250 100 L250 330 L290 400 L230 400 L200 340 L170 400 L110 400 L150 330 Z",
    "Socks": "M170 100 L240 100 L240 300 Q240 330 270 340 L320 355 Q350 370 335 400 "
    "L195 400 Q170 390 170 360 Z",
    "Gloves": "M140 400 L140 230 L125 160 Q125 140 145 145 L165 210 L165 130 Q170 115 185 "
    "125 L190 200 L200 115 Q215 105 220 120 L215 200 L235 135 Q250 130 252 145 L240 230 "
    "L285 200 Q300 200 295 220 L255 290 L255 400 Z",
}


def _shade(hex_colour: str, towards: int, amount: float) -> str:
    """The colour moved `amount` of the way to white (255) or black (0)."""
    channels = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(c + (towards - c) * amount) for c in channels]
    return "#" + "".join(f"{c:02x}" for c in mixed)


def initials(title: str) -> str:
    words = [w for w in title.replace("(", " ").split() if w[:1].isalpha()]
    return "".join(w[0].upper() for w in words[:2])


def product_svg(product: DemoProduct) -> str:
    colour = COLOURS.get(product.colours[0] if product.colours else "", "#8c6f55")
    background = _shade(colour, 255, 0.78)
    outline = _shade(colour, 0, 0.35)
    shape = SHAPES.get(product.product_type, "M100 100 H300 V400 H100 Z")
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 500" width="400" '
        f'height="500" role="img" aria-label="{escape(product.title)}">'
        f'<rect width="400" height="500" fill="{background}"/>'
        f'<path d="{shape}" fill="{colour}" stroke="{outline}" stroke-width="4" '
        'stroke-linejoin="round" fill-rule="evenodd"/>'
        f'<text x="200" y="465" text-anchor="middle" font-family="Georgia, serif" '
        f'font-size="34" letter-spacing="6" fill="{outline}">{escape(initials(product.title))}'
        "</text></svg>"
    )
