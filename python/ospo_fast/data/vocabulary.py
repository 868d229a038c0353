"""Vocabulary of the synthetic product-search world: product types, attribute values,
and the phrases a shopper uses to hint at each value without always naming it.

Every product type is a WANDS product class (Wayfair ANnotation DataSet, MIT licence;
`wands_query.tsv` ships beside this file with its licence). The 480 WANDS shopper
queries also set how popular each colour, material and style is (see `wands_mentions`).

Hints come in two kinds per value:
- direct: the shopper names the value ("everything in my study is dark walnut");
- indirect: the shopper describes a need or a situation that implies it
  ("my back hurts after long days at my desk" for lumbar support).
A hint may contain `{room}`, filled with the room of the product type.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

# The order of these names fixes the column order of `World.catalog` and the keys of
# `target_attributes`; product_type comes first because every query targets one.
ATTRIBUTES: tuple[str, ...] = ("product_type", "colour", "material", "style", "size", "brand", "feature")
OPTIONAL_ATTRIBUTES: tuple[str, ...] = ("colour", "material", "style", "size", "feature")


@dataclass(frozen=True)
class Hints:
    direct: tuple[str, ...]
    indirect: tuple[str, ...]


@dataclass(frozen=True)
class ProductType:
    name: str                      # the noun shops put in titles, "Office Chair"
    wands_class: str               # the WANDS query class it stands for
    category: str                  # shop department, "Office"
    room: str                      # where the shopper puts it, for hints: "study"
    materials: tuple[str, ...]
    sizes: tuple[str, ...]
    features: tuple[str, ...]
    related: tuple[str, ...]       # complements (names of other product types)
    hints: Hints


def _h(direct: tuple[str, ...] | str, indirect: tuple[str, ...] | str) -> Hints:
    as_tuple = lambda x: (x,) if isinstance(x, str) else x  # noqa: E731
    return Hints(as_tuple(direct), as_tuple(indirect))


GENERIC = ("Small", "Medium", "Large")
BED = ("Twin", "Full", "Queen", "King")
SEATING = ("2-Seat", "3-Seat", "4-Seat")
RUG = ("5x8", "8x10", "9x12")
CURTAIN = ("63 Inch", "84 Inch", "96 Inch")
VANITY = ("24 Inch", "30 Inch", "36 Inch", "48 Inch")
STOOL = ("Counter Height", "Bar Height")
LIGHTS = ("2-Light", "3-Light", "4-Light")

PRODUCT_TYPES: tuple[ProductType, ...] = (
    # ---------------------------------------------------------------- living room
    ProductType("Sofa", "Sofas", "Living Room", "living room",
                ("Velvet", "Linen", "Leather", "Boucle", "Faux Leather"), SEATING,
                ("Storage", "Pull-Out Bed", "Stain-Resistant Fabric", "Reclining Back"),
                ("Coffee Table", "End Table", "Accent Pillow", "Area Rug", "Ottoman"),
                _h(("our old sofa finally gave out", "I need a new sofa for the {room}"),
                   ("there's nowhere for the whole family to sit together in the evenings",
                    "we watch films every night and end up sitting on the floor"))),
    ProductType("Sectional Sofa", "Sectionals", "Living Room", "living room",
                ("Velvet", "Linen", "Leather", "Boucle", "Microfiber"), SEATING,
                ("Storage", "Pull-Out Bed", "Reversible Chaise", "Stain-Resistant Fabric"),
                ("Coffee Table", "Accent Pillow", "Area Rug", "TV Stand"),
                _h(("I want a big L-shaped sectional", "we're after a corner sectional"),
                   ("I want a corner where everyone can pile in and stretch their legs out",
                    "the {room} has a long empty corner that needs seating along both walls"))),
    ProductType("Accent Chair", "Accent Chairs", "Living Room", "living room",
                ("Velvet", "Linen", "Leather", "Boucle", "Rattan"), GENERIC,
                ("Swivel Base", "Tufted Back", "Stain-Resistant Fabric", "Armrests"),
                ("End Table", "Ottoman", "Accent Pillow", "Table Lamp"),
                _h(("I need a statement armchair for the corner", "I want an accent chair"),
                   ("there's an empty spot by the window where I want to curl up and read",
                    "when guests come round someone always ends up on a kitchen stool"))),
    ProductType("Recliner", "Recliners", "Living Room", "living room",
                ("Leather", "Faux Leather", "Microfiber", "Linen"), GENERIC,
                ("Power Lift", "USB Charging Port", "Massage Function", "Swivel Base"),
                ("End Table", "TV Stand", "Accent Pillow"),
                _h(("dad wants a recliner", "I'm after a reclining chair"),
                   ("my dad wants to put his feet up and doze off during the match",
                    "after a long shift I just want to lean back and stretch out in front of the TV"))),
    ProductType("Coffee Table", "Coffee & Cocktail Tables", "Living Room", "living room",
                ("Walnut", "Oak", "Marble", "Glass", "Metal", "Acacia"), GENERIC,
                ("Lift Top", "Storage", "Open Shelf", "Drawer"),
                ("Sofa", "Sectional Sofa", "Area Rug"),
                _h(("the coffee table we have is tiny", "I need a coffee table"),
                   ("there's nowhere to put my mug down in front of the couch",
                    "board games end up on the floor in the middle of the {room}"))),
    ProductType("End Table", "End Tables", "Living Room", "living room",
                ("Walnut", "Oak", "Marble", "Metal", "Glass", "Rattan"), GENERIC,
                ("USB Charging Port", "Drawer", "Open Shelf", "Storage"),
                ("Sofa", "Accent Chair", "Recliner", "Table Lamp"),
                _h(("I need a side table next to my armchair", "I'm looking for an end table"),
                   ("I keep balancing my drink on the arm of the chair",
                    "there's nowhere to set a book down beside where I sit"))),
    ProductType("TV Stand", "TV Stands & Entertainment Centers", "Living Room", "living room",
                ("Walnut", "Oak", "Metal", "Pine", "Glass"), GENERIC,
                ("Cable Management", "Storage", "Electric Fireplace", "LED Lights"),
                ("Sectional Sofa", "Recliner", "Wall Art"),
                _h(("the TV is sitting on a cardboard box", "I need a TV stand"),
                   ("my games console and streaming box have nowhere to live",
                    "the new telly is propped on two crates"))),
    ProductType("Ottoman", "Ottomans", "Living Room", "living room",
                ("Velvet", "Linen", "Leather", "Boucle", "Jute"), GENERIC,
                ("Storage", "Tufted Back", "Tray Top"),
                ("Sofa", "Accent Chair"),
                _h(("I want an ottoman to rest my feet on", "I need a pouf or ottoman"),
                   ("I need somewhere soft to prop my feet up in front of the chair",
                    "I'd like a low padded seat that can double as a footstool"))),
    ProductType("Area Rug", "Area Rugs", "Living Room", "living room",
                ("Wool", "Jute", "Cotton", "Polyester"), RUG,
                ("Non-Slip Backing", "Machine-Washable Fabric", "Stain-Resistant Fabric", "Low Pile"),
                ("Sofa", "Coffee Table", "Dining Table", "Bed"),
                _h(("I'd like a rug for the {room}", "we need an area rug"),
                   ("the floorboards are freezing underfoot and the room echoes",
                    "the bare floor in the {room} feels cold and unfinished"))),
    ProductType("Accent Pillow", "Accent Pillows", "Living Room", "living room",
                ("Velvet", "Linen", "Cotton", "Wool"), GENERIC,
                ("Removable Cover", "Down Fill", "Machine-Washable Fabric"),
                ("Sofa", "Sectional Sofa", "Bed", "Accent Chair"),
                _h(("I need some throw pillows", "I want a few cushions for the couch"),
                   ("the couch looks bare and I want something soft to lean on",
                    "I want to add a bit of colour and softness to the seating"))),
    # ---------------------------------------------------------------- decor
    ProductType("Curtain Panel", "Curtains & Drapes", "Decor", "bedroom",
                ("Linen", "Velvet", "Cotton", "Polyester"), CURTAIN,
                ("Blackout Lining", "Thermal Insulation", "Grommet Top", "Machine-Washable Fabric"),
                ("Accent Pillow", "Area Rug", "Bed"),
                _h(("I need new curtains", "I want curtains for the {room}"),
                   ("the morning sun blasts through the window at 5am",
                    "the neighbours can see straight into the {room} at night"))),
    ProductType("Wall Mirror", "Wall & Accent Mirrors", "Decor", "hallway",
                ("Brass", "Metal", "Oak", "Rattan"), GENERIC,
                ("Beveled Edge", "LED Backlight", "Wall-Mount Bracket"),
                ("Console Table", "Bathroom Vanity", "Dresser"),
                _h(("I want a big mirror by the door", "I need a wall mirror"),
                   ("I can't check my outfit before I leave the house",
                    "the {room} is dark and narrow and I'd like it to feel twice as big"))),
    ProductType("Wall Art", "Wall Art", "Decor", "living room",
                ("Canvas", "Metal", "Oak", "Glass"), GENERIC,
                ("Floating Frame", "Hanging Hardware", "Multi-Panel Layout"),
                ("Sofa", "Wall Mirror", "Console Table"),
                _h(("I want some art for the big blank wall", "I'm looking for wall art"),
                   ("there's a huge empty wall above the couch that looks sad",
                    "the walls of the {room} are completely bare"))),
    ProductType("Wall Clock", "Wall Clocks", "Decor", "kitchen",
                ("Metal", "Oak", "Glass", "Brass"), GENERIC,
                ("Silent Movement", "Pendulum", "Wall-Mount Bracket"),
                ("Wall Art", "Console Table"),
                _h(("I need a wall clock", "I'd like a clock for the wall"),
                   ("I keep checking my phone to see if I'm late",
                    "nobody in the {room} ever knows what time it is"))),
    # ---------------------------------------------------------------- entryway
    ProductType("Console Table", "Sofa & Console Tables", "Entryway", "hallway",
                ("Walnut", "Oak", "Metal", "Marble", "Glass"), GENERIC,
                ("Drawer", "Open Shelf", "Storage", "USB Charging Port"),
                ("Wall Mirror", "Table Lamp", "Shoe Storage"),
                _h(("I'd like a slim console table for the hall", "I need a narrow entry table"),
                   ("everyone dumps their keys and post on the floor when they come in",
                    "there's a narrow strip of wall in the {room} with nothing against it"))),
    ProductType("Shoe Storage", "Shoe Storage", "Entryway", "hallway",
                ("Bamboo", "Oak", "Metal", "Pine"), GENERIC,
                ("Bench Seat", "Doors", "Adjustable Shelves"),
                ("Coat Rack", "Console Table"),
                _h(("I need somewhere to put shoes by the door", "I want a shoe rack"),
                   ("there's a pile of trainers and boots everyone trips over in the {room}",
                    "our footwear is scattered all over the floor by the front door"))),
    ProductType("Coat Rack", "Coat Racks and Hooks", "Entryway", "hallway",
                ("Metal", "Oak", "Bamboo", "Walnut"), GENERIC,
                ("Umbrella Stand", "Wall-Mount Bracket", "Open Shelf"),
                ("Shoe Storage", "Console Table", "Wall Mirror"),
                _h(("I need a coat rack", "I want coat hooks for the hall"),
                   ("jackets get flung over the banister the minute anyone walks in",
                    "there's nowhere to hang anything up in the {room}"))),
    # ---------------------------------------------------------------- bedroom
    ProductType("Bed", "Beds", "Bedroom", "bedroom",
                ("Walnut", "Oak", "Velvet", "Metal", "Linen"), BED,
                ("Storage", "LED Lights", "Tufted Back"),
                ("Nightstand", "Bedding Set", "Dresser", "Headboard", "Area Rug"),
                _h(("we need a new bed frame", "I'm shopping for a bed"),
                   ("our mattress has been sitting on the floor since we moved",
                    "the old frame creaks every time one of us turns over"))),
    ProductType("Headboard", "Headboards", "Bedroom", "bedroom",
                ("Velvet", "Linen", "Rattan", "Oak", "Metal"), BED,
                ("Tufted Back", "Wingback Sides", "Adjustable Height"),
                ("Bed", "Bedding Set", "Nightstand"),
                _h(("I'd like a headboard for the bed", "I need a headboard"),
                   ("my pillows keep sliding down the gap between the mattress and the wall",
                    "I like sitting up to read at night but the wall is cold against my back"))),
    ProductType("Dresser", "Dressers & Chests", "Bedroom", "bedroom",
                ("Walnut", "Oak", "Pine", "Rattan"), GENERIC,
                ("Soft-Close Drawers", "Anti-Tip Kit", "Wall-Mount Bracket"),
                ("Bed", "Nightstand", "Wall Mirror"),
                _h(("I need a chest of drawers", "I'm looking for a dresser"),
                   ("my clothes live in piles on a chair",
                    "folded jumpers are stacked on the floor of the {room}"))),
    ProductType("Nightstand", "Nightstands", "Bedroom", "bedroom",
                ("Walnut", "Oak", "Pine", "Rattan", "Metal"), GENERIC,
                ("USB Charging Port", "Drawer", "Open Shelf", "LED Lights"),
                ("Bed", "Table Lamp", "Dresser"),
                _h(("I need a bedside table", "I want a nightstand"),
                   ("my phone and glasses end up on the floor next to the bed every night",
                    "there's nowhere to put a glass of water within reach when I'm lying down"))),
    ProductType("Bedding Set", "Bedding Sets", "Bedroom", "bedroom",
                ("Cotton", "Linen", "Microfiber"), BED,
                ("Cooling Fabric", "Machine-Washable Fabric", "Reversible Design", "Hypoallergenic Fill"),
                ("Bed", "Accent Pillow", "Headboard"),
                _h(("I want a new duvet cover and sheet set", "I need a bedding set"),
                   ("our covers are thin and faded and the bed looks tired",
                    "I want the bed to feel like a hotel when I climb in"))),
    # ---------------------------------------------------------------- dining
    ProductType("Dining Table", "Dining Tables", "Dining", "dining room",
                ("Walnut", "Oak", "Marble", "Glass", "Acacia", "Pine"), SEATING,
                ("Extendable Leaf", "Pedestal Base", "Storage"),
                ("Dining Chair", "Chandelier", "Sideboard", "Area Rug"),
                _h(("we need a dining table", "I'm looking for a kitchen table"),
                   ("we eat dinner off our laps in front of the TV and I want proper family meals",
                    "the {room} is empty apart from a light fitting"))),
    ProductType("Dining Chair", "Dining Chairs", "Dining", "dining room",
                ("Oak", "Walnut", "Velvet", "Rattan", "Metal", "Leather"), GENERIC,
                ("Upholstered Seat", "Stackable Frame", "Armrests"),
                ("Dining Table", "Sideboard"),
                _h(("we need chairs for the dining table", "I want dining chairs"),
                   ("when friends come over for dinner people end up perching on boxes",
                    "we have a lovely table but only two wobbly seats"))),
    ProductType("Bar Stool", "Bar Stools", "Kitchen", "kitchen",
                ("Metal", "Oak", "Velvet", "Leather", "Rattan"), STOOL,
                ("Swivel Base", "Backrest", "Footrest"),
                ("Kitchen Island",),
                _h(("I need stools for the breakfast bar", "I'm after some bar stools"),
                   ("we have a counter overhang but everyone stands while eating",
                    "the kids want to sit up at the counter while I cook"))),
    ProductType("Sideboard", "Sideboards & Buffets", "Dining", "dining room",
                ("Walnut", "Oak", "Acacia", "Rattan", "Metal"), GENERIC,
                ("Wine Rack", "Sliding Doors", "Adjustable Shelves", "Soft-Close Drawers"),
                ("Dining Table", "Dining Chair", "Wall Mirror"),
                _h(("I'd like a sideboard", "we need a buffet cabinet"),
                   ("the nice plates and table linens have nowhere to go near the table",
                    "serving dishes are stacked on the floor of the {room}"))),
    # ---------------------------------------------------------------- lighting
    ProductType("Chandelier", "Chandeliers", "Lighting", "dining room",
                ("Brass", "Crystal", "Metal", "Glass", "Rattan"), LIGHTS,
                ("Dimmer Switch", "Adjustable Hanging Height", "Smart Bulb Sockets"),
                ("Dining Table", "Pendant Light"),
                _h(("I want a chandelier over the table", "I'm looking for a chandelier"),
                   ("there's a bare bulb dangling above where we eat",
                    "the ceiling of the {room} needs a real centrepiece"))),
    ProductType("Pendant Light", "Pendant Lights", "Lighting", "kitchen",
                ("Brass", "Glass", "Metal", "Rattan", "Concrete"), LIGHTS,
                ("Dimmer Switch", "Adjustable Hanging Height", "Plug-In Cord", "Smart Bulb Sockets"),
                ("Kitchen Island", "Dining Table", "Chandelier"),
                _h(("I need pendant lights", "I want hanging lights over the island"),
                   ("the island is lit by one sad downlight and it's gloomy at night",
                    "I can barely see what I'm chopping in the evenings"))),
    ProductType("Table Lamp", "Table Lamps", "Lighting", "bedroom",
                ("Brass", "Ceramic", "Glass", "Metal", "Rattan"), GENERIC,
                ("Dimmer Switch", "USB Charging Port", "Touch Control"),
                ("Nightstand", "End Table", "Desk", "Console Table"),
                _h(("I need a lamp for reading", "I want a table lamp"),
                   ("the overhead light is harsh and I need something softer beside me in the evenings",
                    "I can't read in bed without waking my partner with the big light"))),
    ProductType("Vanity Light", "Vanity Lighting", "Lighting", "bathroom",
                ("Brass", "Glass", "Metal"), LIGHTS,
                ("Dimmer Switch", "Damp-Rated Design", "Smart Bulb Sockets"),
                ("Bathroom Vanity", "Wall Mirror"),
                _h(("I need a light over the bathroom mirror", "I want a vanity light"),
                   ("I can't see properly to shave or do my makeup in the mornings",
                    "the {room} mirror is lit by one dim bulb behind my head"))),
    # ---------------------------------------------------------------- office
    ProductType("Desk", "Desks", "Office", "study",
                ("Walnut", "Oak", "Pine", "Bamboo", "Metal", "Glass"), GENERIC,
                ("Adjustable Height", "Cable Management", "Drawer", "Storage"),
                ("Office Chair", "Bookcase", "Chair Mat", "Filing Cabinet", "Table Lamp"),
                _h(("I need a proper desk", "I'm looking for a desk for the {room}"),
                   ("I work with my laptop on my knees on the sofa",
                    "I have nowhere to set up two monitors and a keyboard"))),
    ProductType("Office Chair", "Office Chairs", "Office", "study",
                ("Mesh", "Leather", "Faux Leather", "Velvet", "Walnut"), GENERIC,
                ("Lumbar Support", "Adjustable Armrests", "Headrest", "Swivel Base"),
                ("Desk", "Chair Mat"),
                _h(("I need a decent office chair", "I want a desk chair"),
                   ("I've been perching on a kitchen stool while I work from home",
                    "I need somewhere proper to sit through eight hours of video calls"))),
    ProductType("Bookcase", "Bookcases", "Office", "study",
                ("Walnut", "Oak", "Pine", "Metal", "Bamboo"), GENERIC,
                ("Adjustable Shelves", "Doors", "Wall-Mount Bracket"),
                ("Desk", "Accent Chair"),
                _h(("my books need a proper bookcase", "I want a bookshelf"),
                   ("my paperbacks are stacked in wobbly towers on the floor",
                    "I've got boxes of novels and nowhere to display them"))),
    ProductType("Filing Cabinet", "Office Storage Cabinets", "Office", "study",
                ("Metal", "Oak", "Walnut", "Pine"), GENERIC,
                ("Lockable Drawers", "Wheels", "Fireproof Lining", "Soft-Close Drawers"),
                ("Desk", "Bookcase"),
                _h(("I need a filing cabinet", "I want an office storage cabinet"),
                   ("tax paperwork and bills are piled on every surface",
                    "client folders are stacked in shopping bags under the desk"))),
    ProductType("Chair Mat", "Chairmats", "Office", "study",
                ("Polycarbonate", "Bamboo", "Glass", "Vinyl"), GENERIC,
                ("Carpet Grippers", "Hard-Floor Base", "Beveled Edge"),
                ("Office Chair", "Desk"),
                _h(("I need a mat under my desk chair", "I want a chair mat"),
                   ("the wheels of my seat are chewing up the floor",
                    "there's a worn patch on the floor where I roll back and forth all day"))),
    # ---------------------------------------------------------------- bath
    ProductType("Bathroom Vanity", "Vanities", "Bath", "bathroom",
                ("Oak", "Walnut", "Marble", "Pine"), VANITY,
                ("Soft-Close Drawers", "Double Sink", "Open Shelf", "Wall-Mount Bracket"),
                ("Vanity Light", "Wall Mirror", "Bath Mat"),
                _h(("we're replacing the bathroom vanity", "I need a new vanity unit"),
                   ("the sink unit is rotting underneath and there's nowhere to put toiletries",
                    "the {room} basin sits on a leaky old cabinet"))),
    ProductType("Shower Curtain", "Shower Curtains", "Bath", "bathroom",
                ("Cotton", "Linen", "Polyester"), GENERIC,
                ("Hooks Included", "Machine-Washable Fabric", "Weighted Hem"),
                ("Bath Mat", "Bathroom Vanity"),
                _h(("I want a new shower curtain", "I need a curtain for the shower"),
                   ("water splashes all over the {room} floor every time I shower",
                    "the old plastic thing round the tub has gone mouldy"))),
    ProductType("Bath Mat", "Bath Rugs & Mats", "Bath", "bathroom",
                ("Cotton", "Bamboo", "Memory Foam"), GENERIC,
                ("Non-Slip Backing", "Machine-Washable Fabric", "Quick-Dry Fibres"),
                ("Shower Curtain", "Bathroom Vanity"),
                _h(("I need a bath mat", "I want a rug for the bathroom"),
                   ("I step out of the shower onto cold slippery tiles",
                    "the {room} floor is always wet and freezing on bare feet"))),
    # ---------------------------------------------------------------- kitchen
    ProductType("Kitchen Island", "Kitchen Islands", "Kitchen", "kitchen",
                ("Oak", "Walnut", "Acacia", "Marble"), GENERIC,
                ("Wheels", "Drop Leaf", "Wine Rack", "Storage"),
                ("Bar Stool", "Pendant Light"),
                _h(("we'd like a kitchen island", "I'm looking for a kitchen cart or island"),
                   ("there isn't enough counter space to chop vegetables",
                    "everyone crowds round the one bit of worktop when we cook"))),
    ProductType("Kitchen Mat", "Kitchen Mats", "Kitchen", "kitchen",
                ("Memory Foam", "Cotton", "Jute", "Vinyl"), GENERIC,
                ("Anti-Fatigue Cushioning", "Non-Slip Backing", "Machine-Washable Fabric"),
                ("Kitchen Island", "Bar Stool"),
                _h(("I need a kitchen mat", "I want a mat for in front of the sink"),
                   ("my feet ache after standing at the stove for hours",
                    "the tiles in front of the sink are hard and always splashed"))),
    # ---------------------------------------------------------------- kids
    ProductType("Kids Bed", "Kids Beds", "Kids", "kid's room",
                ("Pine", "Oak", "Metal"), ("Twin", "Full"),
                ("Trundle", "Storage", "Guard Rails"),
                ("Kids Desk", "Bedding Set"),
                _h(("my daughter needs a bed of her own", "I'm shopping for a kids bed"),
                   ("my little one has outgrown the cot and keeps climbing out",
                    "our son still sleeps in a toddler bed and his feet hang off the end"))),
    ProductType("Kids Desk", "Kids Desks", "Kids", "kid's room",
                ("Pine", "Oak", "Metal", "Bamboo"), GENERIC,
                ("Adjustable Height", "Storage", "Tilting Top"),
                ("Kids Bed", "Bookcase"),
                _h(("my son needs a little desk for homework", "I want a kids desk"),
                   ("my ten-year-old does homework sprawled on the floor",
                    "the children colour and draw at the kitchen counter and it's chaos"))),
    # ---------------------------------------------------------------- outdoor
    ProductType("Patio Conversation Set", "Outdoor Conversation Sets", "Outdoor", "garden",
                ("Teak", "Rattan", "Metal", "Acacia"), SEATING,
                ("Weather-Resistant Finish", "Cushions Included", "Fire Pit Table"),
                ("Patio Lounge Chair", "Planter"),
                _h(("we want an outdoor seating set for the patio", "I need patio furniture"),
                   ("we have a lovely deck but guests stand around when we barbecue",
                    "I'd love to have coffee outside with friends but there's nowhere to sit"))),
    ProductType("Patio Lounge Chair", "Patio Lounge Chairs", "Outdoor", "garden",
                ("Teak", "Rattan", "Metal", "Acacia"), GENERIC,
                ("Weather-Resistant Finish", "Adjustable Backrest", "Cushions Included", "Folding Frame"),
                ("Patio Conversation Set", "Planter"),
                _h(("I want a sun lounger", "I'm after an outdoor lounge chair"),
                   ("I want to lie out and read in the sun by the pool",
                    "I spend summer afternoons dozing on a towel on the grass"))),
    ProductType("Planter", "Planters", "Outdoor", "garden",
                ("Ceramic", "Concrete", "Metal", "Rattan"), GENERIC,
                ("Drainage Hole", "Self-Watering Insert", "Wheels"),
                ("Patio Conversation Set", "Patio Lounge Chair"),
                _h(("I want a big planter for the patio", "I need plant pots"),
                   ("my fiddle-leaf fig has outgrown its plastic nursery pot",
                    "the herbs I grow are still in the flimsy tubs they came in"))),
)

COLOUR_HINTS: dict[str, Hints] = {
    "Black": _h(("it should be black like everything else in my {room}", "I only buy black"),
                ("I want it as dark as a moonless night", "my whole {room} is a goth cave and it must fit in")),
    "White": _h(("I'd like it in white", "white would suit the {room}"),
                ("I want it the colour of fresh snow", "I want it to look crisp and bright like a gallery")),
    "Grey": _h(("I'd like it grey", "grey would go with my walls"),
                ("I want the colour of a rainy sky", "something the shade of wet pavement")),
    "Navy": _h(("my curtains are navy and I'd like it to match", "navy would be lovely"),
                ("I want the deep blue of a sailor's blazer", "the colour of the ocean at midnight")),
    "Beige": _h(("I'd like it in beige", "beige would match the {room}"),
                ("I want the colour of dry sand", "something oatmeal-toned and calm")),
    "Brown": _h(("brown would be best", "I want it brown"),
                ("I want the colour of milk chocolate", "something the shade of a conker")),
    "Sage Green": _h(("I'd love it in sage green", "sage green would be perfect"),
                     ("I want the soft dusty colour of dried herbs", "the shade of olive leaves in the shade")),
    "Blush Pink": _h(("blush pink is my favourite", "I want it blush pink"),
                     ("I want the soft colour of a ballet slipper", "something the shade of a faint rosy cheek")),
    "Mustard Yellow": _h(("I'd like it mustard yellow", "mustard would be fun"),
                         ("I want the colour of English mustard on a hot dog", "something warm like autumn sunflowers")),
    "Teal": _h(("I love teal", "teal would pop in the {room}"),
               ("I want the colour of a peacock's neck", "something between a lagoon blue and green")),
    "Burnt Orange": _h(("burnt orange would be great", "I want it in burnt orange"),
                       ("I want the colour of a terracotta pot", "something like rust on an old gate")),
    "Burgundy": _h(("burgundy is what I want", "I'd like it in burgundy"),
                   ("I want the colour of a glass of red wine", "something as deep as a ripe cherry")),
}

MATERIAL_HINTS: dict[str, Hints] = {
    "Walnut": _h(("everything in my {room} is dark walnut", "walnut would be ideal"),
                 ("I love rich, dark chocolate-toned wood grain", "I like deep brown hardwood like an old piano")),
    "Oak": _h(("I'd like oak to match the floors", "oak would suit the {room}"),
              ("I like sturdy, honey-coloured wood like old school desks", "I want pale, strong hardwood with a visible grain")),
    "Pine": _h(("pine would be fine", "I'd like pine"),
               ("I like knotty light wood like a ski chalet", "I want soft, yellowish wood with little knots in it")),
    "Teak": _h(("teak would be ideal", "I want teak"),
               ("I want the wood they build boat decks from because it survives any weather",
                "I want an oily tropical hardwood that goes silver outdoors")),
    "Acacia": _h(("acacia wood would be lovely", "I like acacia"),
                 ("I like wood with a wild, swirly two-tone grain", "I want a chunky wood with streaks of light and dark")),
    "Bamboo": _h(("I'd like bamboo", "bamboo would be great"),
                 ("I want something made from a fast-growing grass, for the planet", "I'd like a light eco material made of canes")),
    "Rattan": _h(("I love rattan", "I'd like rattan or wicker"),
                 ("I love that woven, holiday-villa cane look", "I want it woven like a beach basket")),
    "Metal": _h(("a metal frame would be best", "I'd like it in metal"),
                ("it has to be sturdy steel that never wobbles", "I want something cold and strong like a workshop")),
    "Brass": _h(("I love brass", "I'd like brass"),
                ("I love warm gold-toned hardware that ages nicely", "I want it to look like an old ship's instrument")),
    "Glass": _h(("I'd like glass", "a glass one would be nice"),
                ("I want something see-through so the room feels bigger", "I want to see right through it")),
    "Marble": _h(("I love marble", "I'd like marble"),
                 ("I love cool, veined stone surfaces", "I want polished stone like an Italian hotel lobby")),
    "Velvet": _h(("I'd love velvet", "velvet please"),
                 ("I love fabric that's plush and soft to stroke", "I want that lush fabric that changes shade when you brush it")),
    "Linen": _h(("I'd like linen", "linen would be nice"),
                ("I like a relaxed, slightly crumpled natural fabric", "I want breathable woven flax")),
    "Leather": _h(("real leather please", "I want leather"),
                  ("it has to survive two dogs, wipe clean and age beautifully", "I want cowhide that gets a patina over the years")),
    "Faux Leather": _h(("faux leather please", "I'd like vegan leather"),
                       ("I'm vegan but love that wipe-clean hide look", "I want the look of hide without any animal product")),
    "Boucle": _h(("I love boucle", "I'd like boucle"),
                 ("I love that nubbly, teddy-bear textured fabric", "I want fabric with little loops like a sheepskin coat")),
    "Mesh": _h(("I'd like mesh", "a mesh one would be best"),
               ("I get hot and sweaty sitting for long stretches", "I want air to flow through it in summer")),
    "Wool": _h(("I'd like wool", "wool would be best"),
               ("I want natural sheep's fibre that's warm underfoot", "I want something woven from fleece")),
    "Cotton": _h(("I'd like cotton", "cotton please"),
                 ("I want soft, breathable natural fibre", "I want the same fabric as a crisp shirt")),
    "Jute": _h(("I'd like jute", "jute would be nice"),
               ("I like rough natural rope fibres", "I want it to feel like woven twine")),
    "Polyester": _h(("polyester is fine", "I'd like polyester"),
                    ("I want a cheap synthetic that doesn't crease", "I want a hard-wearing man-made fabric")),
    "Microfiber": _h(("I'd like microfiber", "microfiber please"),
                     ("I want something synthetic and super soft that hides pet hair", "I want a suede-like fabric that brushes clean")),
    "Ceramic": _h(("I'd like ceramic", "ceramic would be lovely"),
                  ("I like glazed, fired-clay pottery", "I want it to look hand-thrown on a potter's wheel")),
    "Concrete": _h(("I'd like concrete", "concrete would look great"),
                   ("I like raw, cement-grey surfaces", "I want it to look like it came from a building site")),
    "Crystal": _h(("I want crystal", "crystal drops please"),
                  ("I want it to sparkle and throw rainbows around the room", "I want lots of glittering prisms")),
    "Canvas": _h(("I'd like a canvas print", "canvas please"),
                 ("I want it printed on a stretched painter's surface", "I like that woven artist's fabric texture")),
    "Memory Foam": _h(("I'd like memory foam", "memory foam please"),
                      ("I want it to squish softly underfoot", "I want it to mould to my feet")),
    "Vinyl": _h(("vinyl is fine", "I'd like vinyl"),
                ("I want wipe-clean plastic", "I want something I can mop over")),
    "Polycarbonate": _h(("I'd like polycarbonate", "polycarbonate please"),
                        ("I want a clear tough plastic that won't crack", "I want it see-through and unbreakable")),
}

STYLE_HINTS: dict[str, Hints] = {
    "Mid-Century Modern": _h(("I love mid-century modern pieces", "mid-century modern is my style"),
                             ("I'm obsessed with 1960s Mad Men interiors", "I love tapered legs and that retro sixties feel")),
    "Farmhouse": _h(("I love farmhouse style", "our place is all farmhouse"),
                    ("we just moved into an old barn conversion", "I love shiplap walls and a country kitchen feel")),
    "Industrial": _h(("I like an industrial look", "industrial style suits us"),
                     ("our loft has exposed brick and pipes", "I like the feel of an old warehouse")),
    "Scandinavian": _h(("I love Scandinavian style", "I want it Scandi"),
                       ("I want it calm and pale like a Copenhagen flat", "I love hygge and simple Nordic design")),
    "Bohemian": _h(("I love boho style", "our home is bohemian"),
                   ("there are macrame hangings and plants everywhere", "I love a free-spirited, festival feel")),
    "Coastal": _h(("I like a coastal look", "coastal style please"),
                  ("it's going in our beach house by the sea", "I want it to feel like a seaside cottage")),
    "Traditional": _h(("I prefer traditional styles", "I like traditional pieces"),
                      ("my home is full of my grandmother's antiques", "I like classic things that look like they've been around forever")),
    "Glam": _h(("I love glam", "I want something glam"),
               ("I like a bit of old Hollywood sparkle", "I want it to feel like a luxe hotel suite")),
    "Rustic": _h(("I love rustic things", "rustic suits us"),
                 ("it's for a log cabin in the mountains", "I like rough, weathered, lived-in things")),
    "Contemporary": _h(("I like contemporary design", "contemporary please"),
                       ("I like clean lines and nothing fussy", "I want it to look current and sleek")),
}

SIZE_HINTS: dict[str, Hints] = {
    "Small": _h(("it has to be small", "a small one please"),
                ("I live in a studio the size of a shoebox", "space is really tight in the {room}")),
    "Medium": _h(("a medium one would be ideal", "medium size please"),
                 ("nothing too big, nothing too dinky", "the {room} is an average size")),
    "Large": _h(("bigger is better here, a large one", "it should be large"),
                ("the {room} is huge and echoey", "it needs to fill a very big space")),
    "Twin": _h(("it should be twin size", "a twin will do"),
               ("it's for a narrow box room for one small sleeper", "it's for a single child's bed")),
    "Full": _h(("full size please", "it should be a full"),
               ("it's for one adult who likes to sprawl a bit", "a single is too narrow but a double-wide is too much")),
    "Queen": _h(("queen size would fit best", "it's a queen"),
                ("it's for the two of us, in a normal-sized bedroom", "it's for a couple with an average room")),
    "King": _h(("king size, nothing smaller", "it has to be a king"),
               ("two adults plus a dog who sleeps sideways between us", "we want the widest bed going")),
    "2-Seat": _h(("just a two-seater", "two seats is enough"),
                 ("it's only ever me and my partner", "it's just the two of us")),
    "3-Seat": _h(("three seats should do", "a three-seater please"),
                 ("there are three of us who watch TV together", "it's me, my partner and our teenager")),
    "4-Seat": _h(("room for four people at once", "a four-seater please"),
                 ("we're a family of four and everyone wants a spot", "the four of us all want to sit together")),
    "5x8": _h(("something around five by eight feet", "a 5x8 would fit"),
              ("it's for a modest reading corner", "it only has to cover a small patch of floor")),
    "8x10": _h(("eight by ten would fit", "I think 8x10"),
               ("it should sit under the front legs of all the furniture in an average room",
                "it has to cover a normal seating area")),
    "9x12": _h(("nine by twelve, it's a big floor", "a 9x12 please"),
               ("it needs to cover most of a huge open-plan floor", "the floor is enormous")),
    "63 Inch": _h(("63 inch drop", "they should be 63 inches long"),
                  ("the windows are small and sit high on the wall", "they only need to reach the sill")),
    "84 Inch": _h(("84 inch drop", "84 inches long please"),
                  ("we have normal ceilings and want them to reach the floor", "the windows are standard height")),
    "96 Inch": _h(("96 inch drop", "they should be 96 inches"),
                  ("we have very tall ceilings in an old house", "the windows go almost up to the ceiling")),
    "24 Inch": _h(("24 inch wide", "it has to be 24 inches"),
                  ("it's for a tiny cloakroom", "the gap is barely two feet wide")),
    "30 Inch": _h(("30 inch", "a 30 inch one"),
                  ("it's for a small family bathroom", "the space is two and a half feet wide")),
    "36 Inch": _h(("36 inch", "a 36 inch unit"),
                  ("it's for a roomy main bathroom", "we have exactly three feet of wall to fill")),
    "48 Inch": _h(("48 inch", "a 48 inch vanity"),
                  ("it's for a big master bathroom", "we have a whole four feet of wall to fill")),
    "Counter Height": _h(("counter height", "counter-height stools"),
                         ("our kitchen worktop is standard height", "they go at a normal kitchen counter")),
    "Bar Height": _h(("bar height", "bar-height stools"),
                     ("the bar top is extra tall", "they're for a high pub-style table")),
    "2-Light": _h(("two lights is enough", "a two-light fixture"),
                  ("it's a small space that only needs a little light", "the mirror is narrow")),
    "3-Light": _h(("three lights", "a three-light fixture"),
                  ("it's a medium-sized space", "three bulbs would be about right")),
    "4-Light": _h(("four lights", "a four-light fixture"),
                  ("it's a long, wide space that needs plenty of light", "the mirror is really wide")),
}

FEATURE_HINTS: dict[str, Hints] = {
    "Storage": _h(("it needs built-in storage", "storage inside would be great"),
                  ("I never have anywhere to put things away", "clutter is taking over the {room}")),
    "Pull-Out Bed": _h(("it should fold out into a bed", "a sleeper would be great"),
                       ("my in-laws stay over most weekends", "friends crash at ours after parties")),
    "Stain-Resistant Fabric": _h(("stain-resistant fabric is a must", "it has to be stain resistant"),
                                 ("my toddler spills juice on absolutely everything", "red wine ends up everywhere at our parties")),
    "Reclining Back": _h(("a reclining back would be great", "it should recline"),
                         ("I want to lean way back and nap", "I like to tip back and put my feet up")),
    "Reversible Chaise": _h(("the chaise should swap sides", "a reversible chaise"),
                            ("we might move flats and the layout will change", "I keep rearranging the furniture")),
    "Swivel Base": _h(("it should swivel", "a swivel base would be handy"),
                      ("I like to turn to face the TV or the window", "I want to spin round to chat to people")),
    "Tufted Back": _h(("I love a tufted, buttoned back", "tufting would be nice"),
                      ("I love those button-studded backs on old club chairs", "I like deep buttons pressed into the padding")),
    "Armrests": _h(("it needs arms", "with armrests please"),
                   ("I like somewhere to rest my elbows", "I need something to push up on when I stand")),
    "Power Lift": _h(("a power lift would help", "it should have a lift"),
                     ("dad struggles to get up out of low seats", "standing up is hard on my knees these days")),
    "USB Charging Port": _h(("a built-in USB port would be handy", "it should have USB charging"),
                            ("my phone is always dying and the socket is miles away", "I'm forever hunting for a charger")),
    "Massage Function": _h(("massage would be a bonus", "a massage setting please"),
                           ("my shoulders are in knots by the end of the day", "I'd love a back rub every evening")),
    "Lift Top": _h(("a lift-top would be perfect", "it should have a lift top"),
                   ("I eat dinner and work on my laptop from the couch", "I hunch over to eat in front of the TV")),
    "Open Shelf": _h(("an open shelf would help", "with a shelf underneath"),
                     ("I want somewhere to stack magazines where I can see them", "I like to display a few books and plants")),
    "Drawer": _h(("a drawer would help", "with a drawer please"),
                 ("the remote controls keep going missing", "I need somewhere to hide chargers and odds and ends")),
    "Cable Management": _h(("with cable management", "it should hide the cables"),
                           ("there's a rat's nest of wires behind everything", "cords dangle everywhere and the cat chews them")),
    "Electric Fireplace": _h(("an electric fireplace built in", "with a fireplace insert"),
                             ("I miss having a cosy flame to look at in winter", "I want a flickering glow on cold evenings")),
    "LED Lights": _h(("with LED lights", "built-in LED lighting please"),
                     ("I like a soft glow in the dark", "I want it to light up a bit at night")),
    "Adjustable Shelves": _h(("adjustable shelves please", "the shelves should be adjustable"),
                             ("my things come in all different heights", "some of my stuff is tall and some is tiny")),
    "Doors": _h(("with doors", "it should have doors"),
                ("I hate dust settling on everything", "I want to hide the mess behind something")),
    "Tray Top": _h(("with a tray top", "a tray on top would be nice"),
                   ("I want to put drinks on it without them tipping", "I'd like to rest snacks on it")),
    "Non-Slip Backing": _h(("it needs a non-slip backing", "non-slip please"),
                           ("the floor is slippery and I've already tripped twice", "it keeps sliding around on the tiles")),
    "Machine-Washable Fabric": _h(("it has to be machine washable", "washable please"),
                           ("the dog is muddy half the year and it has to go in the wash", "I want to throw it in the washer when it's dirty")),
    "Low Pile": _h(("low pile please", "it should be low pile"),
                   ("the robot vacuum gets stuck on anything fluffy", "the door has to swing over it")),
    "Removable Cover": _h(("with removable covers", "the cover should come off"),
                          ("I want to be able to take the outside off and wash it", "the kids wipe their hands on everything")),
    "Down Fill": _h(("down filled", "with a down insert"),
                    ("I want it squishy like a cloud", "I want to sink into it")),
    "Dimmer Switch": _h(("it should be dimmable", "dimmable please"),
                   ("I like to lower the light for movie nights", "I want it bright for cleaning and soft for dinner")),
    "Touch Control": _h(("touch control please", "with a touch switch"),
                        ("I fumble for the switch in the dark", "I want to tap it on and off")),
    "Blackout Lining": _h(("with blackout lining", "blackout please"),
                          ("I work night shifts and sleep through the day", "the streetlight outside keeps me awake")),
    "Thermal Insulation": _h(("thermal lined", "with thermal insulation"),
                             ("there's a terrible draught from the old windows", "the heating bills are huge and the room is always cold")),
    "Grommet Top": _h(("grommet top please", "with grommets"),
                      ("I want it to slide easily along the pole", "I hate fiddly hooks")),
    "Beveled Edge": _h(("with a bevelled edge", "beveled edges please"),
                       ("I like the way light catches on angled glass", "I want a sloped polished rim")),
    "LED Backlight": _h(("with an LED backlight", "backlit please"),
                        ("I do my makeup there and need even light", "I want a soft glow around it")),
    "Wall-Mount Bracket": _h(("wall-mounted please", "it should go on the wall"),
                       ("I don't have an inch of floor space to spare", "I want the floor clear for the robot hoover")),
    "Floating Frame": _h(("framed please", "it should come framed"),
                 ("I want a proper border around it", "I want it finished off neatly round the edge")),
    "Hanging Hardware": _h(("ready to hang", "it should come ready to hang"),
                       ("I have no drill and no patience", "I want to put it up in five minutes")),
    "Multi-Panel Layout": _h(("a multi-panel set", "in several panels"),
                      ("I like pictures that span across several pieces", "I want a picture split into a triptych")),
    "Silent Movement": _h(("silent, no ticking", "it must be silent"),
                          ("the ticking keeps me up at night", "any tick-tock drives me mad")),
    "Pendulum": _h(("with a pendulum", "a pendulum please"),
                   ("I love the swinging motion of a grandfather clock", "I want something that sways back and forth")),
    "Wingback Sides": _h(("a wingback shape", "wingback please"),
                   ("I love high sides like an old hotel armchair", "I want it to wrap round me a bit")),
    "Adjustable Height": _h(("it should be height adjustable", "adjustable height please"),
                           ("I switch between sitting and standing through the day", "people of very different heights will use it")),
    "Soft-Close Drawers": _h(("soft-close drawers please", "the drawers should soft close"),
                            ("the slamming drawers wake the baby", "I hate the bang of drawers shutting")),
    "Anti-Tip Kit": _h(("with an anti-tip kit", "it must be anchored against tipping"),
                       ("my toddler climbs everything", "I worry it could fall on the kids")),
    "Cooling Fabric": _h(("cooling fabric please", "it should be cooling"),
                  ("I wake up sweaty every night", "I run really hot when I sleep")),
    "Reversible Design": _h(("reversible please", "it should be reversible"),
                     ("I like to switch the look around with the seasons", "I get bored of one pattern quickly")),
    "Hypoallergenic Fill": _h(("hypoallergenic please", "it must be hypoallergenic"),
                         ("my allergies flare up at night", "dust mites make me sneeze all night")),
    "Extendable Leaf": _h(("with an extra leaf", "it should extend"),
                          ("at Christmas we suddenly have twelve people round", "sometimes we host big dinners")),
    "Pedestal Base": _h(("a pedestal base please", "with a pedestal"),
                        ("I keep banging my knees on table legs", "I want to squeeze extra chairs round it")),
    "Upholstered Seat": _h(("with an upholstered seat", "padded seats please"),
                           ("long dinners on hard seats make me sore", "I want somewhere soft to sit")),
    "Stackable Frame": _h(("stackable please", "they should stack"),
                    ("I need to tuck them away when we're not using them", "we only need extra seats now and then")),
    "Backrest": _h(("with a backrest", "it needs a back"),
                   ("I need something to lean back on", "my back aches on backless seats")),
    "Footrest": _h(("with a footrest", "a footrest please"),
                   ("my feet dangle in the air", "I need somewhere to rest my feet")),
    "Wine Rack": _h(("with a wine rack", "a built-in wine rack please"),
                    ("my bottles are lying around on the floor", "I collect red wine and need somewhere to keep it")),
    "Sliding Doors": _h(("sliding doors please", "with sliding doors"),
                        ("there's no room for doors to swing open", "the gap in front of it is tiny")),
    "Adjustable Hanging Height": _h(("with an adjustable hanging height", "the drop should be adjustable"),
                                    ("our ceilings are unusually high", "I want to set exactly how low it hangs")),
    "Smart Bulb Sockets": _h(("it should work with smart bulbs", "smart bulb compatible please"),
                                ("I want to control everything from my phone", "I shout at my speaker to turn the lights on")),
    "Plug-In Cord": _h(("a plug-in one please", "with a plug-in cord"),
                       ("I rent and can't rewire anything", "there's no ceiling fitting where I want it")),
    "Damp-Rated Design": _h(("it must be damp rated", "damp rated please"),
                     ("the room gets really steamy", "condensation drips off everything after a shower")),
    "Lumbar Support": _h(("it needs lumbar support", "good lumbar support please"),
                         ("my back hurts after long days at my desk", "my lower back aches by lunchtime")),
    "Adjustable Armrests": _h(("adjustable armrests please", "the arms should adjust"),
                              ("my shoulders ache from typing", "the arms always hit the desk edge")),
    "Headrest": _h(("with a headrest", "it needs a headrest"),
                   ("I like to lean my head back on long calls", "my neck gets stiff by the evening")),
    "Lockable Drawers": _h(("lockable drawers please", "it should lock"),
                           ("there are confidential documents I must keep private", "I don't want anyone reading my files")),
    "Wheels": _h(("on wheels please", "it should have wheels"),
                 ("I move it around the room all the time", "I want to roll it out of the way")),
    "Fireproof Lining": _h(("it must be fireproof", "fireproof please"),
                    ("I'm paranoid about losing important documents in a fire", "our passports have to survive anything")),
    "Carpet Grippers": _h(("for carpet please", "it's for a carpeted floor"),
                     ("the floor is thick carpet", "the wheels sink into the shag pile")),
    "Hard-Floor Base": _h(("for hard floors", "it's for a hard floor"),
                          ("we have hardwood floors", "the floor is polished boards")),
    "Double Sink": _h(("with a double sink", "two basins please"),
                      ("my partner and I fight over the sink every morning", "we both brush our teeth at the same time")),
    "Hooks Included": _h(("hooks included please", "it should come with hooks"),
                         ("I have nothing to hang it with", "I don't want to buy fittings separately")),
    "Weighted Hem": _h(("with a weighted hem", "a weighted bottom please"),
                       ("it keeps billowing in and sticking to me", "the draught blows it about")),
    "Quick-Dry Fibres": _h(("quick-drying please", "it should dry fast"),
                    ("it's always damp and smells musty", "it never dries between showers")),
    "Weather-Resistant Finish": _h(("it must be weather-resistant", "weatherproof please"),
                            ("it'll be out in the rain all winter", "our garden gets battered by storms")),
    "Cushions Included": _h(("with cushions included", "cushions please"),
                            ("I don't want to buy padding separately", "hard seats are no good for long evenings")),
    "Fire Pit Table": _h(("with a fire pit table", "a fire pit would be great"),
                         ("evenings get chilly and we like toasting marshmallows", "we want to sit round flames after dark")),
    "Adjustable Backrest": _h(("an adjustable backrest please", "the back should adjust"),
                              ("I like to sit up to read and lie flat to nap", "I change position all afternoon")),
    "Folding Frame": _h(("it should fold", "foldable please"),
                   ("I need to put it away in the shed over winter", "storage space is tight so it has to pack flat")),
    "Drainage Hole": _h(("with drainage holes", "it needs drainage"),
                        ("I keep drowning my plants", "the roots rot when water sits in the bottom")),
    "Self-Watering Insert": _h(("self-watering please", "a self-watering one"),
                        ("I always forget to water my plants", "I travel a lot and the plants die")),
    "Drop Leaf": _h(("with a drop leaf", "a drop-leaf top please"),
                    ("the kitchen is tiny and I need to fold it down", "I want extra surface only when I need it")),
    "Anti-Fatigue Cushioning": _h(("anti-fatigue please", "an anti-fatigue one"),
                        ("my feet ache after standing at the stove for hours", "I get sore legs from batch cooking")),
    "Trundle": _h(("with a trundle", "a trundle underneath please"),
                  ("sleepovers happen every other weekend", "cousins come to stay all the time")),
    "Guard Rails": _h(("with guard rails", "it needs rails on the side"),
                      ("my little one rolls around in their sleep", "I'm scared they'll fall out at night")),
    "Tilting Top": _h(("with a tilting top", "the top should tilt"),
                      ("my son loves drawing and needs an angled surface", "she hunches over flat tables")),
    "Bench Seat": _h(("with a bench seat", "a seat on top please"),
                     ("I need to sit down to put my boots on", "the kids need somewhere to sit while they tie laces")),
    "Umbrella Stand": _h(("with an umbrella stand", "somewhere for umbrellas please"),
                         ("wet umbrellas drip all over the floor", "it rains constantly here")),
}

BRAND_HINTS: tuple[str, ...] = ("I had a {brand} one before and loved it", "a friend swears by {brand}")

BRANDS: tuple[str, ...] = (
    "Haverly", "Brookmere", "Oakhurst Lane", "Ellery & Co", "Marlow Home", "Wrenfield", "Ashby Studio",
    "Calder Row", "Thistle & Pine", "Norwood Living", "Penbrook", "Larkspur House", "Halden", "Cobble Hill Works",
    "Ravenna", "Solstice Home", "Kinross", "Delphine", "Birchgate", "Fennimore", "Tidewater Goods", "Corvina",
    "Emberly", "Stowe & Sable",
)

MODEL_NAMES: tuple[str, ...] = (
    "Elin", "Arlo", "Juniper", "Wren", "Sadie", "Theo", "Colby", "Odessa", "Bexley", "Harlow", "Maren", "Ives",
    "Lennox", "Calla", "Dorian", "Esme", "Fable", "Greer", "Hollis", "Indie", "Jasper", "Keira", "Lowry", "Mabel",
    "Nolan", "Orla", "Pippa", "Quinn", "Rowan", "Sloane", "Tamsin", "Ulla", "Vance", "Willa", "Yara", "Zane",
    "Aldo", "Bram", "Cleo", "Dex", "Ember", "Flint", "Gia", "Hugo", "Ada", "Bodhi", "Cosima", "Delia",
)

# Distractor clauses: true-sounding detail that says nothing about the target.
# {other_type}/{other_colour}/{other_room} are filled with values the target does not have.
DISTRACTORS: tuple[str, ...] = (
    "my {other_colour} {other_type} is staying where it is",
    "we're also thinking about a new {other_type} at some point, but not yet",
    "my partner says the {other_type} in the {other_room} needs replacing too",
    "the {other_room} walls are painted {other_colour}",
    "my cat knocks everything over",
    "I'm moving in a few weeks so timing matters",
    "my sister says I overthink these things",
    "I saw a {other_colour} {other_type} at a friend's place last weekend",
    "I'd rather not spend all weekend assembling anything",
    "the last thing I ordered online arrived damaged",
    "we just finished repainting the {other_room}",
    "my neighbour gave me an old {other_type} I don't like",
)
OPENINGS: tuple[str, ...] = ("", "Hi!", "Hey, quick question.", "Okay, I need some help.", "Hello there.", "Right, so.")
CLOSINGS: tuple[str, ...] = ("", "Any ideas?", "What should I search for?", "Thanks!", "Can you help me find one?")
LEAD_INS: tuple[str, ...] = ("", "Also, ", "Honestly, ", "Oh, and ", "For context, ", "Thing is, ", "Plus, ")
DESCRIPTION_FILLERS: tuple[str, ...] = (
    "Assembly takes under 30 minutes.", "Ships in two boxes.", "Backed by a two-year warranty.",
    "Spot clean only.", "Designed in-house and built to last.", "Arrives with all hardware included.",
    "A customer favourite for everyday living.", "Free returns within 30 days.",
)

HINTS_BY_ATTRIBUTE: dict[str, dict[str, Hints]] = {
    "colour": COLOUR_HINTS,
    "material": MATERIAL_HINTS,
    "style": STYLE_HINTS,
    "size": SIZE_HINTS,
    "feature": FEATURE_HINTS,
}
COLOURS: tuple[str, ...] = tuple(COLOUR_HINTS)
STYLES: tuple[str, ...] = tuple(STYLE_HINTS)


def product_type_by_name() -> dict[str, ProductType]:
    return {t.name: t for t in PRODUCT_TYPES}


def hint_templates(attribute: str, value: str, *, direct: bool) -> tuple[str, ...]:
    """The unrendered hint phrases for one attribute value (may contain {room} / {brand})."""
    if attribute == "product_type":
        hints = product_type_by_name()[value].hints
    elif attribute == "brand":
        return BRAND_HINTS
    else:
        hints = HINTS_BY_ATTRIBUTE[attribute][value]
    return hints.direct if direct else hints.indirect


def rendered_hints(attribute: str, value: str, room: str) -> set[str]:
    """Every phrase a context may use to carry `attribute = value` (for span checks)."""
    return {
        t.format(room=room, brand=value)
        for direct in (True, False)
        for t in hint_templates(attribute, value, direct=direct)
    }


@cache
def wands_queries() -> tuple[tuple[str, str], ...]:
    """The 480 WANDS shopper queries as (query, query_class); read from the packaged TSV."""
    text = resources.files("ospo_fast.data").joinpath("wands_query.tsv").read_text(encoding="utf-8")
    rows = csv.DictReader(io.StringIO(text), delimiter="\t")
    if rows.fieldnames is None or not {"query", "query_class"} <= set(rows.fieldnames):
        raise ValueError(f"wands_query.tsv: expected columns query and query_class, got {rows.fieldnames}")
    return tuple((row["query"].strip().lower(), (row["query_class"] or "").strip()) for row in rows)


def wands_mentions(values: tuple[str, ...]) -> dict[str, int]:
    """How many WANDS queries mention each value; sets how often the catalog uses it.

    "Mid-Century Modern" counts "mid century" and "midcentury" too: the first word of a
    hyphenated value, with and without the hyphen, is what shoppers type.
    """
    queries = [q for q, _ in wands_queries()]

    def forms(value: str) -> set[str]:
        low = value.lower()
        head = low.split()[0]
        return {low, low.replace("-", " "), head.replace("-", " "), head.replace("-", "")}

    return {v: sum(any(f in q for f in forms(v)) for q in queries) for v in values}


def check_vocabulary() -> None:
    """Raise ValueError when the tables disagree (a type's class is not in WANDS, a relation
    names an unknown type, or a value has no hints)."""
    classes = {c for _, c in wands_queries()}
    names = product_type_by_name()
    for t in PRODUCT_TYPES:
        if t.wands_class not in classes:
            raise ValueError(f"product type {t.name!r}: WANDS class {t.wands_class!r} is not in wands_query.tsv")
        for r in t.related:
            if r not in names or r == t.name:
                raise ValueError(f"product type {t.name!r}: related type {r!r} is unknown")
        for attribute, values in (("material", t.materials), ("size", t.sizes), ("feature", t.features)):
            for v in values:
                if v not in HINTS_BY_ATTRIBUTE[attribute]:
                    raise ValueError(f"product type {t.name!r}: {attribute} {v!r} has no hints")
