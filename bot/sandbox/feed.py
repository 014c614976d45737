"""The sandbox's sample feed: a realistic stream of customer traffic, posted through the bot's real generic webhook.

`SampleFeed` is pure (a seeded `random.Random`, the time passed in): every call to `next_events(now)` gives the
event(s) of one tick, in the generic webhook's format, and `interval()` the seconds until the next tick.
Customers write in English, German, Finnish, Persian, Spanish and French, on X, Instagram, Facebook, Bluesky,
Mastodon (mentions, DMs, comments) and Google (reviews with a rating). Now and then a customer writes again in the
same conversation, and now and then a small storm breaks: near-identical complaints about one incident, sharing
a hashtag, from many people at once.

Events carry no `url` (the page must not link to the internet) and no `reply_url` (replies go to the sandbox's
customer pane). Each carries an extra `lang` key (the generic webhook keeps unknown keys in the item's raw data).

`FeedRunner` ticks a feed in an asyncio task; `signed_post` delivers one event to the webhook, signed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from adapters import signing

logger = logging.getLogger(__name__)

Event = dict[str, Any]
_T = TypeVar("_T")
Post = Callable[[Event], Awaitable[None]]

LANGUAGES: tuple[str, ...] = ("en", "de", "fi", "fa", "es", "fr")
KINDS: tuple[str, ...] = ("mention", "dm", "comment", "review")
PLATFORMS: tuple[str, ...] = ("x", "instagram", "facebook", "bluesky", "mastodon", "google")

STORM_CHANCE = 0.03
"""Chance per tick that a storm starts (when none is under way and the last one started long enough ago)."""
STORM_COOLDOWN = timedelta(minutes=10)
STORM_SIZE = (6, 12)
FOLLOWUP_CHANCE = 0.10
VIP_CHANCE = 0.04
MAX_FOLLOWUPS = 2
"""A conversation gets at most this many follow-ups from its customer."""
FOLLOWUP_POOL = 40
"""Recent conversations a follow-up may continue."""
NORMAL_INTERVAL = (4.0, 12.0)
STORM_INTERVAL = (0.7, 1.4)
FOLLOWERS = (10, 5_000)


@dataclass(frozen=True, slots=True)
class Line:
    """One message a customer may write. `{order}` in the text becomes an order number."""

    kind: str
    text: str
    rating: int | None = None


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    handle: str
    """Without the @ and without an instance: `handle_on` makes it fit the platform."""
    lang: str
    followers: int
    role: str = ""
    """For VIPs: who they are (a tech journalist, a celebrity chef…)."""


@dataclass(frozen=True, slots=True)
class Incident:
    hashtag: str
    lines: dict[str, tuple[str, ...]]


def _mention(text: str) -> Line:
    return Line("mention", text)


def _dm(text: str) -> Line:
    return Line("dm", text)


def _comment(text: str) -> Line:
    return Line("comment", text)


def _review(rating: int, text: str) -> Line:
    return Line("review", text, rating)


CONTENT: dict[str, tuple[Line, ...]] = {
    "en": (
        _mention("@Acme just got my order two days early and the packaging was lovely. Thank you!"),
        _mention("@Acme does the winter jacket come in XS? The size chart in the app is blank for me."),
        _mention("@Acme ordered a blender three weeks ago and it never arrived. Tracking hasn't moved since the 3rd."),
        _mention("@Acme your app logs me out every time I switch to another app. Anyone else?"),
        _mention("@Acme how long does a refund usually take? Sent the shoes back last Monday."),
        _mention("@Acme the headphones I got are broken, the left side is completely silent. Not impressed."),
        _mention("Shoutout to @Acme support, sorted my exchange in five minutes 🙌"),
        _dm("Hi, my order {order} says delivered but there's nothing at my door. Can you check?"),
        _dm("Hello, I was charged twice for order {order}. Please refund one of the payments."),
        _dm("Hi! Can I still change the delivery address on order {order}? I'm moving this weekend."),
        _dm("Order {order} arrived in the wrong colour (I ordered navy, got grey). How do I swap it?"),
        _dm("Hey, I'd like to cancel order {order} if it hasn't shipped yet. Thanks!"),
        _comment("Love this! Will it be back in stock before Christmas?"),
        _comment("Nice post, but maybe answer your DMs first? Been waiting 4 days about my refund."),
        _comment("Bought the green one last month, best purchase of the year 😍"),
        _comment("Is the discount also valid in the app or only on the website?"),
        _review(5, "Fast delivery, great prices and the app is easy to use. Will definitely order again."),
        _review(4, "Good selection and quick shipping. One item was missing from the box, but support sent it "
                   "the next day."),
        _review(3, "Products are fine, but delivery took almost two weeks."),
        _review(2, "The return process is a nightmare. Still waiting for my refund after a month."),
        _review(1, "Package never arrived and nobody answers the phone. Avoid."),
    ),
    "de": (
        _mention("@Acme Bestellung heute angekommen, alles super verpackt. Danke!"),
        _mention("@Acme Die Kaffeemaschine ist nach zwei Wochen kaputt. Wie läuft das mit der Garantie?"),
        _mention("@Acme Seit 10 Tagen warte ich auf meine Rückerstattung. Wann kommt das Geld?"),
        _mention("@Acme Gibt es die Laufschuhe auch in Größe 46?"),
        _mention("@Acme Eure App stürzt bei jedem Öffnen ab 🙄"),
        _mention("Großes Lob an @Acme, der Umtausch ging total schnell und unkompliziert."),
        _dm("Hallo, meine Bestellung {order} ist laut Sendungsverfolgung zugestellt, aber ich habe nichts bekommen."),
        _dm("Guten Tag, bei Bestellung {order} wurde der Betrag doppelt abgebucht. Ich bitte um Rückerstattung."),
        _dm("Hi, kann ich bei Bestellung {order} noch die Lieferadresse ändern?"),
        _dm("Hallo! Der Artikel aus Bestellung {order} kam beschädigt an, der Karton war komplett eingedrückt. "
            "Was nun?"),
        _comment("Sieht toll aus! Gibt es das auch in anderen Farben?"),
        _comment("Schön und gut, aber antwortet doch mal auf E-Mails. Ich warte seit einer Woche."),
        _comment("Hab ich letzte Woche gekauft, bin total begeistert 😍"),
        _comment("Gilt der Rabatt auch für Artikel, die schon reduziert sind?"),
        _review(5, "Schnelle Lieferung, super Service. Gerne wieder!"),
        _review(4, "Gute Auswahl und faire Preise, nur die Lieferung hat etwas gedauert."),
        _review(3, "Ganz okay. Die Ware ist in Ordnung, aber der Kundenservice ist schwer zu erreichen."),
        _review(2, "Artikel kam kaputt an, und die Rückerstattung dauert jetzt schon drei Wochen."),
        _review(1, "Nie wieder. Paket nie angekommen, der Kundenservice reagiert nicht."),
    ),
    "fi": (
        _mention("@Acme Kiitos nopeasta toimituksesta, paketti tuli jo seuraavana päivänä!"),
        _mention("@Acme Tilaamani kuulokkeet olivat rikki, kun paketti tuli. Miten palautus toimii?"),
        _mention("@Acme Odotan edelleen hyvitystä palautuksesta. Kauanko tässä menee?"),
        _mention("@Acme Onko talvitakkia vielä saatavilla koossa M?"),
        _mention("@Acme Sovellus kaatuu joka kerta, kun yritän maksaa 😤"),
        _mention("Iso kiitos @Acme asiakaspalvelulle, vaihto hoitui tosi helposti."),
        _dm("Hei, tilaukseni {order} näkyy toimitettuna, mutta en ole saanut mitään. Voitteko tarkistaa?"),
        _dm("Moi! Tilauksesta {order} veloitettiin kahdesti. Pyydän hyvitystä toisesta veloituksesta."),
        _dm("Hei, voinko vielä muuttaa tilauksen {order} toimitusosoitetta?"),
        _dm("Tilauksen {order} paketti ei ole vieläkään saapunut, vaikka sen piti tulla jo viime viikolla."),
        _comment("Ihana! Tuleeko tätä myös muissa väreissä?"),
        _comment("Kiva postaus, mutta vastatkaa ensin viesteihin. Odotan edelleen vastausta hyvityksestä."),
        _comment("Ostin tämän viime kuussa, paras ostos pitkään aikaan 😍"),
        _comment("Onko alennus voimassa myös sovelluksessa?"),
        _review(5, "Nopea toimitus ja ystävällinen palvelu. Suosittelen!"),
        _review(4, "Hyvä valikoima ja edulliset hinnat. Toimitus kesti vähän odotettua kauemmin."),
        _review(3, "Ihan ok. Tuotteet ovat hyviä, mutta asiakaspalveluun on vaikea saada yhteyttä."),
        _review(2, "Tuote oli rikki, ja hyvitystä on odotettu jo kolme viikkoa."),
        _review(1, "Paketti ei koskaan saapunut, eikä kukaan vastaa. En suosittele."),
    ),
    "fa": (
        _mention("@Acme ممنون از ارسال سریع! سفارشم یک روز زودتر رسید."),
        _mention("@Acme هدفونی که خریدم خراب است و صدای سمت چپ قطع است. چطور مرجوعش کنم؟"),
        _mention("@Acme دو هفته است که منتظر استرداد وجه هستم. کی به حسابم واریز می‌شود؟"),
        _mention("@Acme این کفش سایز ۴۲ هم دارد؟"),
        _mention("@Acme اپلیکیشن شما از دیروز باز نمی‌شود 😕"),
        _mention("واقعاً از پشتیبانی @Acme راضی هستم، تعویض کالا خیلی سریع انجام شد."),
        _dm("سلام، سفارش {order} در سیستم «تحویل‌شده» ثبت شده ولی به دست من نرسیده. لطفاً بررسی کنید."),
        _dm("سلام، برای سفارش {order} دو بار از حسابم پول کم شده. لطفاً یکی را برگردانید."),
        _dm("سلام وقت بخیر، می‌توانم آدرس ارسال سفارش {order} را تغییر بدهم؟"),
        _dm("سفارش {order} هنوز نرسیده، در حالی که قرار بود هفته‌ی پیش برسد."),
        _comment("خیلی قشنگه! رنگ‌های دیگه هم داره؟"),
        _comment("پست خوبیه، ولی اول جواب پیام‌ها رو بدید. یک هفته است منتظرم."),
        _comment("ماه پیش خریدمش، عالیه 😍"),
        _comment("این تخفیف توی اپلیکیشن هم فعاله؟"),
        _review(5, "ارسال سریع و کیفیت عالی. حتماً دوباره خرید می‌کنم."),
        _review(4, "تنوع کالا خوب است و قیمت‌ها مناسب، فقط ارسال کمی طول کشید."),
        _review(3, "بد نیست. کالاها خوب‌اند ولی پشتیبانی دیر جواب می‌دهد."),
        _review(2, "کالا خراب رسید و بعد از سه هفته هنوز پولم برنگشته."),
        _review(1, "بسته هیچ‌وقت نرسید و هیچ‌کس جواب نمی‌دهد. اصلاً توصیه نمی‌کنم."),
    ),
    "es": (
        _mention("@Acme ¡Mi pedido llegó antes de lo previsto y muy bien empaquetado! Gracias 🙌"),
        _mention("@Acme La cafetera llegó rota. ¿Cómo hago la devolución?"),
        _mention("@Acme Llevo tres semanas esperando el reembolso. ¿Alguien me puede decir algo?"),
        _mention("@Acme ¿Tenéis estas zapatillas en la talla 38?"),
        _mention("@Acme La app se cierra sola cada vez que intento pagar 😤"),
        _mention("Mil gracias a @Acme, el cambio de talla fue rapidísimo."),
        _dm("Hola, mi pedido {order} aparece como entregado pero no he recibido nada. ¿Podéis revisarlo?"),
        _dm("Buenas, me habéis cobrado dos veces el pedido {order}. Necesito el reembolso de uno de los cargos."),
        _dm("Hola, ¿puedo cambiar todavía la dirección de entrega del pedido {order}?"),
        _dm("El pedido {order} nunca llegó y ya ha pasado más de una semana de la fecha prevista."),
        _comment("¡Qué bonito! ¿Viene en otros colores?"),
        _comment("Muy bonito el post, pero contestad los mensajes. Llevo una semana esperando."),
        _comment("Lo compré el mes pasado y estoy encantada 😍"),
        _comment("¿El descuento también vale en la app?"),
        _review(5, "Envío rapidísimo y una atención excelente. Repetiré seguro."),
        _review(4, "Buena variedad y buenos precios, aunque el envío tardó un poco."),
        _review(3, "Normal. Los productos están bien, pero cuesta mucho contactar con atención al cliente."),
        _review(2, "El producto llegó roto y el reembolso lleva tres semanas pendiente."),
        _review(1, "El paquete nunca llegó y nadie responde. No lo recomiendo."),
    ),
    "fr": (
        _mention("@Acme Commande reçue avec un jour d'avance, tout est parfait. Merci !"),
        _mention("@Acme Mon casque est arrivé cassé, aucun son à gauche. Comment faire un retour ?"),
        _mention("@Acme Ça fait trois semaines que j'attends mon remboursement. Des nouvelles ?"),
        _mention("@Acme Est-ce que cette veste existe en taille S ?"),
        _mention("@Acme Votre appli plante à chaque fois que je veux payer 😤"),
        _mention("Bravo au service client @Acme, échange réglé en cinq minutes."),
        _dm("Bonjour, ma commande {order} est indiquée comme livrée mais je n'ai rien reçu. Pouvez-vous vérifier ?"),
        _dm("Bonjour, j'ai été débité deux fois pour la commande {order}. Merci de me rembourser un des paiements."),
        _dm("Bonjour, est-il encore possible de modifier l'adresse de livraison de la commande {order} ?"),
        _dm("La commande {order} n'est toujours pas arrivée alors qu'elle était prévue la semaine dernière."),
        _comment("Trop beau ! Il existe dans d'autres couleurs ?"),
        _comment("Joli post, mais répondez d'abord aux messages. J'attends depuis une semaine."),
        _comment("Acheté le mois dernier, je l'adore 😍"),
        _comment("La réduction marche aussi dans l'appli ?"),
        _review(5, "Livraison rapide et service client au top. Je recommande !"),
        _review(4, "Bon choix et prix corrects, la livraison a juste pris un peu de temps."),
        _review(3, "Correct, sans plus. Les produits sont bien, mais le service client est difficile à joindre."),
        _review(2, "Produit arrivé cassé et toujours pas de remboursement après trois semaines."),
        _review(1, "Colis jamais arrivé et personne ne répond. À éviter."),
    ),
}

FOLLOWUPS: dict[str, tuple[str, ...]] = {
    "en": ("Any update on this?", "Still waiting for an answer here…", "Hello? It's been two days.",
           "Thanks, all sorted now!", "Just checked again, still nothing. Please help."),
    "de": ("Gibt es hier schon was Neues?", "Warte immer noch auf eine Antwort…",
           "Hallo? Seit zwei Tagen keine Reaktion.", "Danke, hat sich erledigt!",
           "Immer noch nichts passiert. Bitte meldet euch."),
    "fi": ("Onko tähän tullut mitään uutta?", "Odotan edelleen vastausta…", "Haloo? Kaksi päivää eikä mitään.",
           "Kiitos, asia on nyt kunnossa!", "Tarkistin uudestaan, ei vieläkään mitään."),
    "fa": ("خبری نشد؟", "هنوز منتظر جواب هستم…", "سلام؟ دو روز گذشته و هیچ جوابی نیامده.", "ممنون، مشکل حل شد!",
           "دوباره چک کردم، هنوز هیچ خبری نیست."),
    "es": ("¿Alguna novedad?", "Sigo esperando respuesta…", "¿Hola? Dos días sin respuesta.",
           "Gracias, ¡ya está solucionado!", "Lo he vuelto a mirar y sigue igual. Ayuda, por favor."),
    "fr": ("Des nouvelles ?", "J'attends toujours une réponse…", "Allô ? Deux jours sans réponse.",
           "Merci, c'est réglé !", "Je viens de revérifier, toujours rien. Aidez-moi svp."),
}

INCIDENTS: tuple[Incident, ...] = (
    Incident("#acmedown", {
        "en": ("Is the Acme app down for everyone? Can't log in, just a spinning wheel. #acmedown",
               "@Acme the app won't load at all since this morning. What's going on? #acmedown"),
        "de": ("@Acme Die App lädt nicht mehr, Login geht nicht. Ist das bei allen so? #acmedown",
               "Ist die Acme-App down? Komme seit einer Stunde nicht rein #acmedown"),
        "fi": ("@Acme Sovellus ei aukea ollenkaan, eikä kirjautuminen onnistu. Onko muilla sama? #acmedown",
               "Onko Acmen sovellus nurin? Ei toimi yhtään #acmedown"),
        "fa": ("@Acme اپلیکیشن اصلاً باز نمی‌شود و نمی‌توانم وارد شوم. برای بقیه هم همین‌طور است؟ #acmedown",
               "اپ Acme از صبح از دسترس خارج است! #acmedown"),
        "es": ("@Acme ¿Se ha caído la app? No puedo iniciar sesión #acmedown",
               "La app de Acme no carga desde esta mañana. ¿Solo me pasa a mí? #acmedown"),
        "fr": ("@Acme L'appli ne se lance plus, impossible de me connecter. C'est pareil pour vous ? #acmedown",
               "Appli Acme en panne depuis ce matin ?? #acmedown"),
    }),
    Incident("#acmecheckout", {
        "en": ("@Acme checkout keeps failing with 'payment declined' but my bank says it's fine #acmecheckout",
               "Can't pay for anything on Acme right now, error at the very last step #acmecheckout"),
        "de": ("@Acme Die Bezahlung schlägt immer im letzten Schritt fehl. Die Karte ist in Ordnung! #acmecheckout",
               "Kann bei Acme gerade nichts bestellen, Fehler beim Bezahlen #acmecheckout"),
        "fi": ("@Acme Maksu epäonnistuu aina viimeisessä vaiheessa, vaikka kortissa ei ole vikaa #acmecheckout",
               "Acmessa ei pysty nyt maksamaan mitään, kassalla tulee virhe #acmecheckout"),
        "fa": ("@Acme پرداخت در مرحله‌ی آخر خطا می‌دهد، در حالی که کارتم مشکلی ندارد #acmecheckout",
               "الان نمی‌شود از Acme خرید کرد، موقع پرداخت خطا می‌دهد #acmecheckout"),
        "es": ("@Acme El pago falla siempre en el último paso y mi tarjeta funciona perfectamente #acmecheckout",
               "No hay manera de pagar en Acme ahora mismo, da error al finalizar la compra #acmecheckout"),
        "fr": ("@Acme Le paiement échoue à la dernière étape alors que ma carte fonctionne #acmecheckout",
               "Impossible de payer sur Acme en ce moment, erreur à la validation du panier #acmecheckout"),
    }),
    Incident("#acmedoublecharge", {
        "en": ("@Acme I've just been charged twice for the same order?! Refund please #acmedoublecharge",
               "Anyone else charged twice by Acme today? My bank shows two identical payments #acmedoublecharge"),
        "de": ("@Acme Mir wurde dieselbe Bestellung zweimal abgebucht! Bitte um Rückerstattung #acmedoublecharge",
               "Wurde heute noch jemandem bei Acme doppelt abgebucht? #acmedoublecharge"),
        "fi": ("@Acme Sama tilaus veloitettiin kahdesti! Haluan hyvityksen #acmedoublecharge",
               "Veloittiko Acme muiltakin tänään kahdesti? #acmedoublecharge"),
        "fa": ("@Acme برای یک سفارش دو بار از حسابم پول کم شد! لطفاً برگردانید #acmedoublecharge",
               "از کس دیگری هم امروز Acme دو بار پول کم کرده؟ #acmedoublecharge"),
        "es": ("@Acme ¡Me habéis cobrado dos veces el mismo pedido! Quiero el reembolso #acmedoublecharge",
               "¿A alguien más le ha cobrado Acme dos veces hoy? #acmedoublecharge"),
        "fr": ("@Acme J'ai été débité deux fois pour la même commande ! Remboursement svp #acmedoublecharge",
               "Quelqu'un d'autre a été débité deux fois par Acme aujourd'hui ? #acmedoublecharge"),
    }),
)

FIRST_NAMES: dict[str, tuple[str, ...]] = {
    "en": ("Emma", "Liam", "Olivia", "Noah", "Sophie", "James", "Grace", "Daniel", "Ethan", "Hannah", "Ryan", "Megan"),
    "de": ("Lena", "Jonas", "Anna", "Felix", "Marie", "Lukas", "Sophie", "Tim", "Laura", "Paul", "Hannah", "Max"),
    "fi": ("Mika", "Aino", "Juha", "Laura", "Elina", "Antti", "Sanna", "Ville", "Eetu", "Noora", "Jussi", "Kaisa"),
    "fa": ("سارا", "علی", "مریم", "رضا", "نگار", "امیر", "زهرا", "حسین", "مهسا", "محمد", "نازنین", "پویا"),
    "es": ("Lucía", "Pablo", "Carmen", "Javier", "Sofía", "Diego", "Marta", "Alejandro", "Elena", "Sergio", "Paula",
           "Andrés"),
    "fr": ("Chloé", "Lucas", "Manon", "Hugo", "Camille", "Théo", "Léa", "Julien", "Sarah", "Antoine", "Louise",
           "Maxime"),
}
SURNAMES: dict[str, tuple[str, ...]] = {
    "en": ("Johnson", "Carter", "Brown", "Williams", "Turner", "Patel", "Kim", "O'Connor", "Hughes", "Walker",
           "Nguyen", "Evans"),
    "de": ("Müller", "Schmidt", "Weber", "Wagner", "Becker", "Hoffmann", "Schäfer", "Fischer", "Koch", "Richter",
           "Wolf", "Neumann"),
    "fi": ("Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Mäkelä", "Hämäläinen", "Laine", "Heikkinen", "Koskinen",
           "Järvinen", "Lehtinen", "Salminen"),
    "fa": ("احمدی", "رضایی", "حسینی", "محمدی", "کریمی", "موسوی", "جعفری", "کاظمی", "رحیمی", "نوری", "صادقی",
           "تهرانی"),
    "es": ("García", "Fernández", "López", "Martínez", "Rodríguez", "Sánchez", "Gómez", "Ruiz", "Díaz", "Moreno",
           "Navarro", "Torres"),
    "fr": ("Martin", "Bernard", "Dubois", "Laurent", "Petit", "Moreau", "Girard", "Roux", "Lefebvre", "Fournier",
           "Mercier", "Bonnet"),
}
"""A language's first person is its first first name with its first surname (Mika Virtanen, سارا احمدی, …)."""

LATIN: dict[str, str] = {
    "سارا": "sara", "علی": "ali", "مریم": "maryam", "رضا": "reza", "نگار": "negar", "امیر": "amir", "زهرا": "zahra",
    "حسین": "hossein", "مهسا": "mahsa", "محمد": "mohammad", "نازنین": "nazanin", "پویا": "pouya",
    "احمدی": "ahmadi", "رضایی": "rezaei", "حسینی": "hosseini", "محمدی": "mohammadi", "کریمی": "karimi",
    "موسوی": "mousavi", "جعفری": "jafari", "کاظمی": "kazemi", "رحیمی": "rahimi", "نوری": "nouri",
    "صادقی": "sadeghi", "تهرانی": "tehrani",
}
"""How Persian names are spelt in (Latin) handles."""

PEOPLE_PER_LANGUAGE = 20

VIPS: tuple[Person, ...] = (
    Person("sandbox-vip-en", "Dana Whitfield", "danawrites", "en", 184_000, "tech journalist"),
    Person("sandbox-vip-es", "Marco Ruiz", "chefmarcoruiz", "es", 1_250_000, "celebrity chef"),
    Person("sandbox-vip-de", "Jonas Keller", "jonaskeller_tech", "de", 620_000, "tech YouTuber"),
    Person("sandbox-vip-fi", "Iida Lehtonen", "iidalehtonen", "fi", 95_000, "TV presenter"),
    Person("sandbox-vip-fa", "داریوش صدری", "dariush.sadri", "fa", 75_000, "tech podcaster"),
    Person("sandbox-vip-fr", "Inès Lefèvre", "ines.cuisine", "fr", 310_000, "food blogger"),
)

LANGUAGE_WEIGHTS = {"en": 30, "de": 15, "fi": 13, "fa": 13, "es": 15, "fr": 14}
KIND_WEIGHTS = {"mention": 38, "dm": 27, "comment": 18, "review": 17}
PLATFORM_WEIGHTS: dict[str, dict[str, int]] = {
    "mention": {"x": 35, "instagram": 20, "facebook": 15, "bluesky": 15, "mastodon": 15},
    "dm": {"x": 25, "instagram": 35, "facebook": 30, "bluesky": 5, "mastodon": 5},
    "comment": {"instagram": 40, "facebook": 35, "bluesky": 10, "mastodon": 10, "x": 5},
    "review": {"google": 1},
}
STORM_PLATFORM_WEIGHTS = {"x": 40, "bluesky": 20, "mastodon": 15, "instagram": 15, "facebook": 10}


def _latin(name: str, lang: str) -> str:
    """The name as it appears in a handle: lower case ASCII letters (Müller: mueller, Mäkinen: makinen)."""
    if name in LATIN:
        return LATIN[name]
    name = name.lower()
    if lang == "de":
        name = name.replace("ß", "ss").replace("ä", "ae").replace("ö", "oe").replace("ü", "ue")
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(letter for letter in folded if letter.isalnum())


def author_id(person: Person, platform: str) -> str:
    """The customer's id on that platform (one person has a different id on each)."""
    return f"{person.id}-{platform}"


def handle_on(platform: str, handle: str) -> str:
    """How the handle looks on that platform (Google reviewers have none)."""
    if platform == "google":
        return ""
    if platform == "bluesky":
        return f"@{handle.replace('_', '-').strip('-')}.bsky.social"
    if platform == "mastodon":
        return f"@{handle.replace('.', '_')}@mastodon.social"
    return f"@{handle}"


@dataclass(slots=True)
class _Thread:
    """A conversation its customer may come back to."""

    person: Person
    platform: str
    kind: str
    conversation: str
    followups: int = 0


@dataclass(slots=True)
class _Storm:
    incident: Incident
    remaining: int
    authors: list[Person]


def _pick(rng: random.Random, weights: dict[_T, int]) -> _T:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


class SampleFeed:
    """The sample customer traffic: deterministic for a seed and the times passed in."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._count = 0
        self._conversations = 0
        self._people: dict[str, list[Person]] = {lang: self._population(lang) for lang in LANGUAGES}
        self._threads: list[_Thread] = []
        self._storm: _Storm | None = None
        self._last_storm_at: datetime | None = None

    @property
    def storming(self) -> bool:
        return self._storm is not None

    def next_events(self, now: datetime) -> list[Event]:
        """The event(s) of the tick at `now`: usually one, several during a storm."""
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        if self._storm is None and self._may_storm(now) and self._rng.random() < STORM_CHANCE:
            self._start_storm(now)
        if self._storm is not None:
            return self._storm_events(now)
        if self._threads and self._rng.random() < FOLLOWUP_CHANCE:
            return [self._followup(now)]
        return [self._fresh(now)]

    def interval(self) -> float:
        """Seconds until the next tick: a few seconds, about one during a storm."""
        low, high = STORM_INTERVAL if self._storm is not None else NORMAL_INTERVAL
        return self._rng.uniform(low, high)

    # ------------------------------------------------------------------------------------------ ticks

    def _fresh(self, now: datetime) -> Event:
        rng = self._rng
        kind = _pick(rng, KIND_WEIGHTS)
        lang = _pick(rng, LANGUAGE_WEIGHTS)
        line = rng.choice([line for line in CONTENT[lang] if line.kind == kind])
        person = self._vip(lang) if rng.random() < VIP_CHANCE else rng.choice(self._people[lang])
        platform = _pick(rng, PLATFORM_WEIGHTS[kind])
        conversation = f"dm:{author_id(person, platform)}" if kind == "dm" else self._new_conversation()
        text = line.text.replace("{order}", self._order_number())
        if kind != "review":
            self._threads.append(_Thread(person, platform, kind, conversation))
            del self._threads[:-FOLLOWUP_POOL]
        return self._event(now, kind=kind, text=text, person=person, platform=platform,
                           conversation=conversation, rating=line.rating)

    def _followup(self, now: datetime) -> Event:
        thread = self._rng.choice(self._threads)
        thread.followups += 1
        if thread.followups >= MAX_FOLLOWUPS:
            self._threads.remove(thread)
        text = self._rng.choice(FOLLOWUPS[thread.person.lang])
        if thread.kind == "mention":
            text = f"@Acme {text}"
        return self._event(now, kind=thread.kind, text=text, person=thread.person, platform=thread.platform,
                           conversation=thread.conversation)

    def _may_storm(self, now: datetime) -> bool:
        return self._last_storm_at is None or now - self._last_storm_at >= STORM_COOLDOWN

    def _start_storm(self, now: datetime) -> None:
        rng = self._rng
        size = rng.randint(*STORM_SIZE)
        crowd = [person for people in self._people.values() for person in people]
        authors = rng.sample(crowd, size)
        if rng.random() < 0.3:
            authors[rng.randrange(size)] = rng.choice(VIPS)
        self._storm = _Storm(rng.choice(INCIDENTS), size, authors)
        self._last_storm_at = now

    def _storm_events(self, now: datetime) -> list[Event]:
        storm = self._storm
        assert storm is not None
        rng = self._rng
        events: list[Event] = []
        for _ in range(min(storm.remaining, rng.randint(1, 3))):
            person = storm.authors.pop()
            platform = _pick(rng, STORM_PLATFORM_WEIGHTS)
            conversation = self._new_conversation()
            text = rng.choice(storm.incident.lines[person.lang])
            self._threads.append(_Thread(person, platform, "mention", conversation))
            events.append(self._event(now, kind="mention", text=text, person=person, platform=platform,
                                      conversation=conversation))
        del self._threads[:-FOLLOWUP_POOL]
        storm.remaining -= len(events)
        if storm.remaining <= 0:
            self._storm = None
        return events

    # ------------------------------------------------------------------------------------------ parts

    def _event(self, now: datetime, *, kind: str, text: str, person: Person, platform: str, conversation: str,
               rating: int | None = None) -> Event:
        self._count += 1
        event: Event = {
            "id": f"sandbox-{self.seed}-{self._count}",
            "kind": kind,
            "text": text,
            "author": {"id": author_id(person, platform), "name": person.name,
                       "handle": handle_on(platform, person.handle), "followers": person.followers},
            "platform": platform,
            "conversation": conversation,
            "created_at": now.astimezone(UTC).isoformat(timespec="seconds"),
            "lang": person.lang,
        }
        if rating is not None:
            event["rating"] = rating
        return event

    def _new_conversation(self) -> str:
        self._conversations += 1
        return f"sandbox-conv-{self.seed}-{self._conversations}"

    def _order_number(self) -> str:
        return f"AC-{self._rng.randint(1_000_000, 9_999_999)}"

    def _population(self, lang: str) -> list[Person]:
        """The language's customers: distinct names, its first one always the first first name + surname."""
        rng = self._rng
        first_names, surnames = FIRST_NAMES[lang], SURNAMES[lang]
        others = [(first, last) for first in first_names for last in surnames][1:]
        names = [(first_names[0], surnames[0]), *rng.sample(others, PEOPLE_PER_LANGUAGE - 1)]
        people: list[Person] = []
        handles: set[str] = set()
        for index, (first, last) in enumerate(names):
            handle = self._handle(_latin(first, lang), _latin(last, lang))
            while handle in handles:
                handle += str(rng.randint(0, 9))
            handles.add(handle)
            name = f"{first} {last}"
            people.append(Person(f"sandbox-{lang}-{index + 1}", name, handle, lang, self._followers()))
        return people

    def _handle(self, first: str, last: str) -> str:
        style = self._rng.randrange(6)
        if style == 0:
            return f"{first}{last}"
        if style == 1:
            return f"{first}.{last}"
        if style == 2:
            return f"{first}_{last}"
        if style == 3:
            return f"{first}{last[0]}"
        if style == 4:
            return f"{first[0]}{last}"
        return f"{first}{last}{self._rng.randint(1, 99)}"

    def _followers(self) -> int:
        low, high = FOLLOWERS
        return int(10 ** self._rng.uniform(math.log10(low), math.log10(high)))

    def _vip(self, lang: str) -> Person:
        return next(vip for vip in VIPS if vip.lang == lang)


# ---------------------------------------------------------------------------------------------- runner

class FeedRunner:
    """Ticks a `SampleFeed` in an asyncio task, posting its events, until stopped."""

    def __init__(self, *, post: Post, feed: SampleFeed, on_change: Callable[[bool], None] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._post = post
        self._feed = feed
        self._on_change = on_change
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        """Starts the loop (in the running event loop); does nothing when it runs already."""
        if self._task is not None:
            return
        task = asyncio.get_running_loop().create_task(self._loop(), name="sandbox-feed")
        task.add_done_callback(self._ended)
        self._task = task
        self._notify(True)

    async def stop(self) -> None:
        """Stops the loop and waits for it; does nothing when it is not running."""
        task = self._task
        if task is None:
            return
        self._task = None
        task.cancel()
        if task is not asyncio.current_task():
            await asyncio.wait([task])
        self._notify(False)

    async def _loop(self) -> None:
        while True:
            try:
                events = self._feed.next_events(datetime.now(UTC))
            except Exception:
                logger.exception("sample feed: no events this tick")
                events = []
            for event in events:
                try:
                    await self._post(event)
                except Exception as error:
                    logger.warning("sample feed: posting %s failed: %s", event.get("id"), error)
            await self._sleep(self._feed.interval())

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("sample feed stopped", exc_info=task.exception())
        if self._task is task:  # ended by itself, not by stop()
            self._task = None
            self._notify(False)

    def _notify(self, running: bool) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(running)
        except Exception:
            logger.exception("sample feed: on_change failed")


# ---------------------------------------------------------------------------------------------- delivery

class FeedPostError(RuntimeError):
    """The webhook refused an event."""


def signed_post(http: httpx.AsyncClient, url: str, secret: str) -> Post:
    """Posts an event to the generic webhook at `url`, signed with `secret`; raises `FeedPostError` unless 2xx."""

    async def post(event: Event) -> None:
        body = json.dumps(event, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **signing.headers(secret, body)}
        response = await http.post(url, content=body, headers=headers)
        if not response.is_success:
            raise FeedPostError(f"{url} answered {response.status_code}: {response.text[:500]}")

    return post

