"""Labelled multi-locale free text for measuring detection: short support notes and
tweet-like messages in the locale's language, each with the gold spans of the personal data
it holds, and a scorer for a detector's spans against them.

    rows = labelled_rows(2000, seed=7)    # [(locale, text, [(start, end, "PERSON_NAME"), ...])]
    scores = score(rows, predictions, claimed)

Rows go round the locales in `LOCALES` (12: en_US, en_GB, en_IN, de_DE, fr_FR, es_ES, it_IT,
nl_NL, pt_BR, pl_PL, ja_JP, zh_CN). A row with personal data (~85 %) is one to four clauses,
each a phrasing of one entity (or of a name with its email, phone or address) drawn from the
language's own phrasings, in a random order, joined in one of several ways, with an opener
(a ticket number, "Note:") and a closer ("Thanks!", a hashtag) or neither; one in seven also
carries a look-alike sentence (an invoice number, a build version, a Luhn-valid order number).
The other ~15 % are clean: only look-alikes (invoice numbers, versions, order numbers, prices,
product codes, capitalised product names, some of them named after people and places).

The values are Faker's for the locale: `name()`; `street_address()`, alone, with the city,
or as the locale's full `address()` on one line (for ja_JP and zh_CN, `address()` without the
postcode: their `street_address()` is not an address); `phone_number()` (domestic formats);
`email()`; cards of six brands' prefixes and lengths, Luhn-valid, grouped or not; `iban()` where the locale's
country has IBANs; dates written in figures in the locale's order, or with the month as a
word in the locale's language ("5 de marzo de 1980", "15 août 1952", "1958年10月3日"); IPv4 and
IPv6; URLs; and the locale's national id, valid by python-stdnum's checks (made with stdnum
where Faker has none or fails the check: UK NINO, DE IdNr, JP My Number, Aadhaar; CN RICs are
Faker's that stdnum accepts), most after their keyword (BSN, マイナンバー, 身份证号, CPF, PESEL).
Gold types are `PiiType` names. Everything is deterministic for a seed and a Faker version.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from faker import Faker
from stdnum import iban as std_iban
from stdnum import luhn, verhoeff
from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.fr import nir
from stdnum.iso7064 import mod_11_10
from stdnum.jp import in_ as jp_in

__all__ = ["COMPATIBLE", "COVER", "LOCALES", "REGIONS", "Span", "labelled_rows", "score"]

Span = tuple[int, int, str]

# locale -> (language, ISO region, national id types)
_LOCALES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "en_US": ("en", "US", ("US_SSN",)),
    "en_GB": ("en", "GB", ("UK_NINO",)),
    "en_IN": ("en", "IN", ("IN_AADHAAR",)),
    "de_DE": ("de", "DE", ("DE_IDNR",)),
    "fr_FR": ("fr", "FR", ("FR_NIR",)),
    "es_ES": ("es", "ES", ("ES_DNI", "ES_NIE")),
    "it_IT": ("it", "IT", ("IT_CF",)),
    "nl_NL": ("nl", "NL", ("NL_BSN",)),
    "pt_BR": ("pt", "BR", ("BR_CPF",)),
    "pl_PL": ("pl", "PL", ("PL_PESEL",)),
    "ja_JP": ("ja", "JP", ("JP_MY_NUMBER",)),
    "zh_CN": ("zh", "CN", ("CN_RIC",)),
}
LOCALES: tuple[str, ...] = tuple(_LOCALES)
REGIONS: dict[str, str] = {loc: region for loc, (_, region, _) in _LOCALES.items()}
_HAS_IBAN = frozenset({"GB", "DE", "FR", "ES", "IT", "NL", "BR", "PL"})
_CJK = frozenset({"ja", "zh"})

# How often each kind of entity is drawn into a row (national ids share "ID").
_WEIGHTS = {"PERSON_NAME": 3.0, "ADDRESS": 2.0, "EMAIL": 1.5, "PHONE": 2.0, "DATE": 1.5, "ID": 1.5,
            "CREDIT_CARD": 1.0, "IBAN": 1.0, "IP_ADDRESS": 0.7, "URL": 0.7}
_CLEAN_SHARE = 0.15
_DISTRACTOR_SHARE = 1 / 7
_PAIR_SHARE = 0.3

# --- phrasings, by language -------------------------------------------------------------------
# {TYPE} is where an entity of that type goes; {N}, {INV}, {ORDER}, {VER}, {SKU}, {PRICE} and
# {PRODUCT} are look-alikes that are not personal data.

_EN = {
    "PERSON_NAME": ["{PERSON_NAME} called about a double charge", "spoke with {PERSON_NAME} this morning",
                    "customer {PERSON_NAME} wants a refund", "account holder: {PERSON_NAME}",
                    "per {PERSON_NAME}, the parcel never arrived", "{PERSON_NAME} says the app keeps crashing",
                    "hi {PERSON_NAME}, thanks for reaching out", "escalated by {PERSON_NAME} from accounts"],
    "ADDRESS": ["ship to {ADDRESS}", "new address is {ADDRESS}", "lives at {ADDRESS}",
                "courier could not find {ADDRESS}", "billing address {ADDRESS} does not match"],
    "EMAIL": ["email {EMAIL}", "reply to {EMAIL}", "contact: {EMAIL}", "sent the invoice to {EMAIL}"],
    "PHONE": ["call back on {PHONE}", "phone {PHONE}", "mobile: {PHONE}", "reachable at {PHONE} after 5pm",
              "left a voicemail at {PHONE}"],
    "CREDIT_CARD": ["card {CREDIT_CARD} was charged twice", "paid with {CREDIT_CARD}", "card number {CREDIT_CARD} declined"],
    "IBAN": ["refund to IBAN {IBAN}", "bank account {IBAN}", "please pay into {IBAN}"],
    "DATE": ["date of birth {DATE}", "born {DATE}", "appointment on {DATE}", "DOB: {DATE}", "customer since {DATE}"],
    "IP_ADDRESS": ["login from {IP_ADDRESS}", "suspicious access from IP {IP_ADDRESS}",
                   "blocked {IP_ADDRESS} after 5 failed attempts"],
    "URL": ["profile at {URL}", "see {URL}", "complained on {URL}"],
    "US_SSN": ["SSN {US_SSN}", "social security number {US_SSN}", "ssn: {US_SSN} on file"],
    "UK_NINO": ["NI number {UK_NINO}", "National Insurance no. {UK_NINO}", "NINO {UK_NINO} verified"],
    "IN_AADHAAR": ["Aadhaar {IN_AADHAAR}", "aadhaar no. {IN_AADHAAR} verified", "Aadhaar number: {IN_AADHAAR}"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} ({PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Ticket #{N}:", "Note:", "[support]", "RE: refund -", "FYI", "Update {N}:"],
    "closers": ["Thanks!", "pls advise", "escalated to tier 2.", "#customerservice", "🙏", "will follow up tomorrow."],
    "clean": ["Invoice {INV} paid in full, total {PRICE}.", "Kiosk updated to build {VER}; no issues since.",
              "Order no. {ORDER} shipped with tracking, ETA two days.",
              "{PRODUCT} back in stock, product code {SKU}, now {PRICE}.",
              "Asked whether the {PRODUCT} works with firmware {VER}.",
              "Happy with the {PRODUCT}, no action needed. Ref {INV}.",
              "Price match request for {SKU}: a competitor sells the {PRODUCT} for {PRICE}."],
}
_DE = {
    "PERSON_NAME": ["{PERSON_NAME} hat wegen einer doppelten Abbuchung angerufen", "Gespräch mit {PERSON_NAME} heute früh",
                    "Kundin {PERSON_NAME} möchte eine Erstattung", "Kontoinhaber: {PERSON_NAME}",
                    "laut {PERSON_NAME} kam das Paket nie an", "{PERSON_NAME} meldet, dass die App abstürzt",
                    "Hallo {PERSON_NAME}, danke für Ihre Nachricht"],
    "ADDRESS": ["Lieferadresse {ADDRESS}", "neue Anschrift: {ADDRESS}", "wohnhaft {ADDRESS}",
                "Paketdienst fand {ADDRESS} nicht", "Rechnungsadresse {ADDRESS} stimmt nicht"],
    "EMAIL": ["E-Mail {EMAIL}", "Antwort bitte an {EMAIL}", "Kontakt: {EMAIL}", "Rechnung ging an {EMAIL}"],
    "PHONE": ["Rückruf unter {PHONE}", "Tel. {PHONE}", "Handy: {PHONE}", "erreichbar unter {PHONE} ab 17 Uhr"],
    "CREDIT_CARD": ["Karte {CREDIT_CARD} wurde doppelt belastet", "bezahlt mit Kreditkarte {CREDIT_CARD}",
                    "Kartennummer {CREDIT_CARD} abgelehnt"],
    "IBAN": ["Erstattung auf IBAN {IBAN}", "Bankverbindung {IBAN}", "bitte überweisen an {IBAN}"],
    "DATE": ["geboren am {DATE}", "Geburtsdatum {DATE}", "Termin am {DATE}", "Vertrag seit {DATE}"],
    "IP_ADDRESS": ["Login von {IP_ADDRESS}", "verdächtiger Zugriff von IP {IP_ADDRESS}",
                   "{IP_ADDRESS} nach 5 Fehlversuchen gesperrt"],
    "URL": ["Profil unter {URL}", "siehe {URL}", "Beschwerde auf {URL}"],
    "DE_IDNR": ["Steuer-ID {DE_IDNR}", "steuerliche Identifikationsnummer {DE_IDNR}", "IdNr. {DE_IDNR} liegt vor"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} (Tel. {PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Ticket #{N}:", "Notiz:", "[Support]", "AW: Erstattung -", "Info:", "Update {N}:"],
    "closers": ["Danke!", "bitte prüfen", "an 2nd Level eskaliert.", "#kundenservice", "🙏", "melde mich morgen."],
    "clean": ["Rechnung {INV} vollständig bezahlt, Summe {PRICE}.", "Kiosk auf Build {VER} aktualisiert, seitdem keine Probleme.",
              "Bestellnr. {ORDER} versendet, Zustellung in zwei Tagen.",
              "{PRODUCT} wieder lieferbar, Artikelnummer {SKU}, jetzt {PRICE}.",
              "Frage, ob {PRODUCT} mit Firmware {VER} läuft.", "Zufrieden mit dem {PRODUCT}, keine Aktion nötig. Ref. {INV}."],
}
_FR = {
    "PERSON_NAME": ["{PERSON_NAME} a appelé pour un double prélèvement", "échange avec {PERSON_NAME} ce matin",
                    "la cliente {PERSON_NAME} demande un remboursement", "titulaire du compte : {PERSON_NAME}",
                    "selon {PERSON_NAME}, le colis n'est jamais arrivé", "{PERSON_NAME} signale que l'appli plante",
                    "Bonjour {PERSON_NAME}, merci pour votre message"],
    "ADDRESS": ["adresse de livraison : {ADDRESS}", "nouvelle adresse : {ADDRESS}", "habite {ADDRESS}",
                "le livreur n'a pas trouvé {ADDRESS}", "adresse de facturation {ADDRESS} incorrecte"],
    "EMAIL": ["e-mail {EMAIL}", "répondre à {EMAIL}", "contact : {EMAIL}", "facture envoyée à {EMAIL}"],
    "PHONE": ["rappeler au {PHONE}", "tél. {PHONE}", "portable : {PHONE}", "joignable au {PHONE} après 17h"],
    "CREDIT_CARD": ["carte {CREDIT_CARD} débitée deux fois", "payé avec la carte {CREDIT_CARD}",
                    "numéro de carte {CREDIT_CARD} refusé"],
    "IBAN": ["remboursement sur l'IBAN {IBAN}", "RIB : {IBAN}", "merci de virer sur {IBAN}"],
    "DATE": ["né le {DATE}", "date de naissance : {DATE}", "rendez-vous le {DATE}", "client depuis le {DATE}"],
    "IP_ADDRESS": ["connexion depuis {IP_ADDRESS}", "accès suspect depuis l'IP {IP_ADDRESS}",
                   "{IP_ADDRESS} bloquée après 5 échecs"],
    "URL": ["profil : {URL}", "voir {URL}", "avis publié sur {URL}"],
    "FR_NIR": ["n° de sécurité sociale {FR_NIR}", "NIR {FR_NIR}", "numéro de sécu : {FR_NIR}"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} (tél. {PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Ticket n°{N} :", "Note :", "[support]", "RE : remboursement -", "Info :", "Suivi {N} :"],
    "closers": ["Merci !", "à vérifier svp", "transmis au niveau 2.", "#serviceclient", "🙏", "je relance demain."],
    "clean": ["Facture {INV} réglée, total {PRICE}.", "Borne mise à jour en version {VER}, plus de souci.",
              "Commande n° {ORDER} expédiée, livraison sous deux jours.",
              "{PRODUCT} de nouveau en stock, réf. {SKU}, désormais {PRICE}.",
              "Demande si le {PRODUCT} fonctionne avec le firmware {VER}.", "Satisfait du {PRODUCT}, rien à faire. Réf. {INV}."],
}
_ES = {
    "PERSON_NAME": ["{PERSON_NAME} llamó por un cargo duplicado", "hablé con {PERSON_NAME} esta mañana",
                    "la clienta {PERSON_NAME} pide un reembolso", "titular de la cuenta: {PERSON_NAME}",
                    "según {PERSON_NAME}, el paquete nunca llegó", "{PERSON_NAME} dice que la app se cierra sola",
                    "Hola {PERSON_NAME}, gracias por escribirnos"],
    "ADDRESS": ["enviar a {ADDRESS}", "nueva dirección: {ADDRESS}", "vive en {ADDRESS}",
                "el repartidor no encontró {ADDRESS}", "la dirección de facturación {ADDRESS} no coincide"],
    "EMAIL": ["correo {EMAIL}", "responder a {EMAIL}", "contacto: {EMAIL}", "factura enviada a {EMAIL}"],
    "PHONE": ["devolver la llamada al {PHONE}", "tel. {PHONE}", "móvil: {PHONE}", "localizable en el {PHONE} por la tarde"],
    "CREDIT_CARD": ["la tarjeta {CREDIT_CARD} se cobró dos veces", "pagó con la tarjeta {CREDIT_CARD}",
                    "tarjeta número {CREDIT_CARD} rechazada"],
    "IBAN": ["reembolso a la cuenta {IBAN}", "IBAN: {IBAN}", "transferir a {IBAN}"],
    "DATE": ["nacido el {DATE}", "fecha de nacimiento: {DATE}", "cita el {DATE}", "cliente desde el {DATE}"],
    "IP_ADDRESS": ["acceso desde {IP_ADDRESS}", "acceso sospechoso desde la IP {IP_ADDRESS}",
                   "{IP_ADDRESS} bloqueada tras 5 intentos"],
    "URL": ["perfil en {URL}", "ver {URL}", "queja publicada en {URL}"],
    "ES_DNI": ["DNI {ES_DNI}", "con DNI {ES_DNI}", "NIF: {ES_DNI}"],
    "ES_NIE": ["NIE {ES_NIE}", "número de extranjero (NIE) {ES_NIE}", "con NIE {ES_NIE}"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} (tel. {PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Ticket n.º {N}:", "Nota:", "[soporte]", "RE: reembolso -", "Aviso:", "Seguimiento {N}:"],
    "closers": ["¡Gracias!", "revisar por favor", "escalado a nivel 2.", "#atencionalcliente", "🙏", "vuelvo a llamar mañana."],
    "clean": ["Factura {INV} pagada, total {PRICE}.", "Quiosco actualizado a la versión {VER}, sin incidencias.",
              "Pedido n.º {ORDER} enviado, entrega en dos días.",
              "{PRODUCT} otra vez disponible, código {SKU}, ahora {PRICE}.",
              "Pregunta si el {PRODUCT} funciona con el firmware {VER}.", "Contento con el {PRODUCT}, nada que hacer. Ref. {INV}."],
}
_IT = {
    "PERSON_NAME": ["{PERSON_NAME} ha chiamato per un doppio addebito", "parlato con {PERSON_NAME} stamattina",
                    "la cliente {PERSON_NAME} chiede un rimborso", "intestatario del conto: {PERSON_NAME}",
                    "secondo {PERSON_NAME} il pacco non è mai arrivato", "{PERSON_NAME} segnala che l'app si blocca",
                    "Gentile {PERSON_NAME}, grazie per averci scritto"],
    "ADDRESS": ["spedire a {ADDRESS}", "nuovo indirizzo: {ADDRESS}", "residente in {ADDRESS}",
                "il corriere non ha trovato {ADDRESS}", "indirizzo di fatturazione {ADDRESS} errato"],
    "EMAIL": ["email {EMAIL}", "rispondere a {EMAIL}", "contatto: {EMAIL}", "fattura inviata a {EMAIL}"],
    "PHONE": ["richiamare al {PHONE}", "tel. {PHONE}", "cellulare: {PHONE}", "reperibile al {PHONE} dopo le 17"],
    "CREDIT_CARD": ["carta {CREDIT_CARD} addebitata due volte", "pagato con la carta {CREDIT_CARD}",
                    "numero carta {CREDIT_CARD} rifiutato"],
    "IBAN": ["rimborso sull'IBAN {IBAN}", "conto corrente {IBAN}", "bonifico su {IBAN}"],
    "DATE": ["nato il {DATE}", "data di nascita: {DATE}", "appuntamento il {DATE}", "cliente dal {DATE}"],
    "IP_ADDRESS": ["accesso da {IP_ADDRESS}", "accesso sospetto dall'IP {IP_ADDRESS}", "{IP_ADDRESS} bloccato dopo 5 tentativi"],
    "URL": ["profilo su {URL}", "vedi {URL}", "recensione pubblicata su {URL}"],
    "IT_CF": ["codice fiscale {IT_CF}", "C.F. {IT_CF}", "CF: {IT_CF}"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} (tel. {PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Ticket n. {N}:", "Nota:", "[assistenza]", "R: rimborso -", "Info:", "Aggiornamento {N}:"],
    "closers": ["Grazie!", "da verificare", "inoltrato al secondo livello.", "#assistenzaclienti", "🙏", "richiamo domani."],
    "clean": ["Fattura {INV} saldata, totale {PRICE}.", "Chiosco aggiornato alla build {VER}, nessun problema.",
              "Ordine n. {ORDER} spedito, consegna in due giorni.",
              "{PRODUCT} di nuovo disponibile, codice {SKU}, ora {PRICE}.",
              "Chiede se il {PRODUCT} funziona con il firmware {VER}.", "Soddisfatto del {PRODUCT}, nessuna azione. Rif. {INV}."],
}
_NL = {
    "PERSON_NAME": ["{PERSON_NAME} belde over een dubbele afschrijving", "vanochtend gesproken met {PERSON_NAME}",
                    "klant {PERSON_NAME} wil geld terug", "rekeninghouder: {PERSON_NAME}",
                    "volgens {PERSON_NAME} is het pakket nooit aangekomen", "{PERSON_NAME} meldt dat de app crasht",
                    "Beste {PERSON_NAME}, bedankt voor je bericht"],
    "ADDRESS": ["verzenden naar {ADDRESS}", "nieuw adres: {ADDRESS}", "woont op {ADDRESS}",
                "bezorger kon {ADDRESS} niet vinden", "factuuradres {ADDRESS} klopt niet"],
    "EMAIL": ["e-mail {EMAIL}", "antwoord naar {EMAIL}", "contact: {EMAIL}", "factuur gestuurd naar {EMAIL}"],
    "PHONE": ["terugbellen op {PHONE}", "tel. {PHONE}", "mobiel: {PHONE}", "bereikbaar op {PHONE} na 17.00 uur"],
    "CREDIT_CARD": ["kaart {CREDIT_CARD} twee keer belast", "betaald met creditcard {CREDIT_CARD}",
                    "kaartnummer {CREDIT_CARD} geweigerd"],
    "IBAN": ["terugbetalen op IBAN {IBAN}", "rekeningnummer {IBAN}", "graag overmaken naar {IBAN}"],
    "DATE": ["geboren op {DATE}", "geboortedatum: {DATE}", "afspraak op {DATE}", "klant sinds {DATE}"],
    "IP_ADDRESS": ["ingelogd vanaf {IP_ADDRESS}", "verdachte toegang vanaf IP {IP_ADDRESS}",
                   "{IP_ADDRESS} geblokkeerd na 5 pogingen"],
    "URL": ["profiel op {URL}", "zie {URL}", "klacht geplaatst op {URL}"],
    "NL_BSN": ["BSN {NL_BSN}", "burgerservicenummer {NL_BSN}", "BSN: {NL_BSN} gecontroleerd"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} (tel. {PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Ticket #{N}:", "Notitie:", "[support]", "RE: terugbetaling -", "Info:", "Update {N}:"],
    "closers": ["Bedankt!", "graag nakijken", "doorgezet naar 2e lijn.", "#klantenservice", "🙏", "bel morgen terug."],
    "clean": ["Factuur {INV} volledig betaald, totaal {PRICE}.", "Kiosk bijgewerkt naar build {VER}, sindsdien geen problemen.",
              "Bestelnr. {ORDER} verzonden, levering binnen twee dagen.",
              "{PRODUCT} weer op voorraad, artikelcode {SKU}, nu {PRICE}.",
              "Vraagt of de {PRODUCT} werkt met firmware {VER}.", "Tevreden over de {PRODUCT}, geen actie nodig. Ref. {INV}."],
}
_PT = {
    "PERSON_NAME": ["{PERSON_NAME} ligou por causa de uma cobrança em dobro", "falei com {PERSON_NAME} hoje cedo",
                    "a cliente {PERSON_NAME} quer reembolso", "titular da conta: {PERSON_NAME}",
                    "segundo {PERSON_NAME}, a encomenda nunca chegou", "{PERSON_NAME} diz que o app trava",
                    "Olá {PERSON_NAME}, obrigado pelo contato"],
    "ADDRESS": ["entregar em {ADDRESS}", "novo endereço: {ADDRESS}", "mora em {ADDRESS}",
                "o entregador não achou {ADDRESS}", "endereço de cobrança {ADDRESS} não confere"],
    "EMAIL": ["e-mail {EMAIL}", "responder para {EMAIL}", "contato: {EMAIL}", "boleto enviado para {EMAIL}"],
    "PHONE": ["retornar no {PHONE}", "tel. {PHONE}", "celular: {PHONE}", "atende no {PHONE} depois das 17h"],
    "CREDIT_CARD": ["cartão {CREDIT_CARD} cobrado duas vezes", "pagou com o cartão {CREDIT_CARD}",
                    "cartão número {CREDIT_CARD} recusado"],
    "IBAN": ["reembolso para o IBAN {IBAN}", "conta {IBAN}", "transferir para {IBAN}"],
    "DATE": ["nascido em {DATE}", "data de nascimento: {DATE}", "consulta marcada para {DATE}", "cliente desde {DATE}"],
    "IP_ADDRESS": ["acesso a partir de {IP_ADDRESS}", "acesso suspeito do IP {IP_ADDRESS}",
                   "{IP_ADDRESS} bloqueado após 5 tentativas"],
    "URL": ["perfil em {URL}", "ver {URL}", "reclamação publicada em {URL}"],
    "BR_CPF": ["CPF {BR_CPF}", "CPF: {BR_CPF} confirmado", "inscrito no CPF sob o nº {BR_CPF}"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} (tel. {PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Chamado #{N}:", "Obs.:", "[suporte]", "RE: reembolso -", "Aviso:", "Atualização {N}:"],
    "closers": ["Obrigado!", "favor verificar", "escalado para o nível 2.", "#atendimento", "🙏", "retorno amanhã."],
    "clean": ["Fatura {INV} paga, total {PRICE}.", "Totem atualizado para a versão {VER}, sem problemas.",
              "Pedido nº {ORDER} enviado, entrega em dois dias.",
              "{PRODUCT} de volta ao estoque, código {SKU}, agora {PRICE}.",
              "Pergunta se o {PRODUCT} funciona com o firmware {VER}.", "Satisfeito com o {PRODUCT}, nada a fazer. Ref. {INV}."],
}
_PL = {
    "PERSON_NAME": ["{PERSON_NAME} dzwonił w sprawie podwójnej płatności", "Zgłaszający: {PERSON_NAME}",
                    "{PERSON_NAME} prosi o zwrot pieniędzy", "właściciel konta: {PERSON_NAME}",
                    "{PERSON_NAME} twierdzi, że paczka nie dotarła", "{PERSON_NAME} zgłasza, że aplikacja się zawiesza",
                    "klient {PERSON_NAME} czeka na kontakt"],
    "ADDRESS": ["adres dostawy: {ADDRESS}", "nowy adres: {ADDRESS}", "adres zamieszkania {ADDRESS}",
                "kurier nie znalazł adresu {ADDRESS}", "adres do faktury {ADDRESS} się nie zgadza"],
    "EMAIL": ["e-mail {EMAIL}", "odpowiedź na {EMAIL}", "kontakt: {EMAIL}", "faktura wysłana na {EMAIL}"],
    "PHONE": ["oddzwonić pod numer {PHONE}", "tel. {PHONE}", "komórka: {PHONE}", "dostępny pod {PHONE} po 17:00"],
    "CREDIT_CARD": ["karta {CREDIT_CARD} obciążona dwa razy", "zapłacono kartą {CREDIT_CARD}",
                    "numer karty {CREDIT_CARD} odrzucony"],
    "IBAN": ["zwrot na IBAN {IBAN}", "numer konta {IBAN}", "proszę przelać na {IBAN}"],
    "DATE": ["urodzony {DATE}", "data urodzenia: {DATE}", "wizyta {DATE}", "klient od {DATE}"],
    "IP_ADDRESS": ["logowanie z {IP_ADDRESS}", "podejrzany dostęp z IP {IP_ADDRESS}", "{IP_ADDRESS} zablokowany po 5 próbach"],
    "URL": ["profil: {URL}", "zob. {URL}", "skarga opublikowana na {URL}"],
    "PL_PESEL": ["PESEL {PL_PESEL}", "nr PESEL: {PL_PESEL}", "numer PESEL {PL_PESEL} zweryfikowany"],
    "pairs": ["{PERSON_NAME} <{EMAIL}>", "{PERSON_NAME} (tel. {PHONE})", "{PERSON_NAME}, {ADDRESS}"],
    "openers": ["Zgłoszenie #{N}:", "Notatka:", "[wsparcie]", "RE: zwrot -", "Info:", "Aktualizacja {N}:"],
    "closers": ["Dzięki!", "proszę sprawdzić", "przekazano do II linii.", "#obsługaklienta", "🙏", "oddzwonię jutro."],
    "clean": ["Faktura {INV} opłacona, razem {PRICE}.", "Kiosk zaktualizowany do wersji {VER}, bez problemów.",
              "Zamówienie nr {ORDER} wysłane, dostawa w dwa dni.", "{PRODUCT} znów dostępny, kod {SKU}, teraz {PRICE}.",
              "Pyta, czy {PRODUCT} działa z firmware {VER}.", "Zadowolony z {PRODUCT}, brak działań. Ref. {INV}."],
}
_JA = {
    "PERSON_NAME": ["{PERSON_NAME}様から二重請求の件で電話あり", "{PERSON_NAME}さんと今朝話しました",
                    "お客様の{PERSON_NAME}様が返金を希望", "口座名義：{PERSON_NAME}",
                    "{PERSON_NAME}様によると荷物が届いていない", "{PERSON_NAME}さんよりアプリが落ちるとの連絡",
                    "{PERSON_NAME}様、お問い合わせありがとうございます"],
    "ADDRESS": ["配送先：{ADDRESS}", "新しい住所は{ADDRESS}", "{ADDRESS}在住", "配達員が{ADDRESS}を見つけられず",
                "請求先住所{ADDRESS}が一致しない"],
    "EMAIL": ["メール {EMAIL}", "返信先：{EMAIL}", "連絡先 {EMAIL}", "請求書を{EMAIL}に送付"],
    "PHONE": ["{PHONE}に折り返し", "電話 {PHONE}", "携帯：{PHONE}", "17時以降は{PHONE}で連絡可"],
    "CREDIT_CARD": ["カード{CREDIT_CARD}が二重に請求された", "クレジットカード {CREDIT_CARD} で支払い",
                    "カード番号{CREDIT_CARD}が拒否"],
    "DATE": ["生年月日：{DATE}", "{DATE}生まれ", "{DATE}に予約", "{DATE}から契約中"],
    "IP_ADDRESS": ["{IP_ADDRESS}からログイン", "不審なアクセス元IP {IP_ADDRESS}", "5回失敗のため{IP_ADDRESS}をブロック"],
    "URL": ["プロフィール {URL}", "詳細は {URL}", "{URL} に苦情を投稿"],
    "JP_MY_NUMBER": ["マイナンバー {JP_MY_NUMBER}", "マイナンバー：{JP_MY_NUMBER}", "個人番号（マイナンバー）{JP_MY_NUMBER}を確認"],
    "pairs": ["{PERSON_NAME}様（{EMAIL}）", "{PERSON_NAME}様 電話{PHONE}", "{PERSON_NAME}様、{ADDRESS}"],
    "openers": ["チケット#{N}：", "メモ：", "【サポート】", "Re: 返金 -", "お知らせ：", "更新{N}："],
    "closers": ["よろしくお願いします。", "確認お願いします", "二次対応へエスカレーション済み。", "#カスタマーサポート", "🙏",
                "明日再度連絡します。"],
    "clean": ["請求書{INV}は支払い済み、合計{PRICE}。", "端末をビルド{VER}に更新、問題なし。", "注文番号{ORDER}を発送、2日で到着予定。",
              "{PRODUCT}が再入荷、商品コード{SKU}、価格{PRICE}。", "{PRODUCT}がファームウェア{VER}で動くかの質問。",
              "{PRODUCT}に満足、対応不要。参照{INV}。"],
}
_ZH = {
    "PERSON_NAME": ["{PERSON_NAME}来电反映重复扣款", "今天上午与{PERSON_NAME}沟通过", "客户{PERSON_NAME}要求退款",
                    "账户持有人：{PERSON_NAME}", "据{PERSON_NAME}说包裹一直没到", "{PERSON_NAME}反馈应用闪退",
                    "{PERSON_NAME}您好，感谢您的留言"],
    "ADDRESS": ["收货地址：{ADDRESS}", "新地址为{ADDRESS}", "住在{ADDRESS}", "快递员找不到{ADDRESS}", "账单地址{ADDRESS}不一致"],
    "EMAIL": ["邮箱 {EMAIL}", "请回复至{EMAIL}", "联系方式：{EMAIL}", "发票已发送至{EMAIL}"],
    "PHONE": ["请回拨{PHONE}", "电话 {PHONE}", "手机：{PHONE}", "下午5点后可拨打{PHONE}"],
    "CREDIT_CARD": ["银行卡{CREDIT_CARD}被重复扣款", "使用信用卡 {CREDIT_CARD} 支付", "卡号{CREDIT_CARD}被拒"],
    "DATE": ["出生日期：{DATE}", "{DATE}出生", "预约时间{DATE}", "自{DATE}起为会员"],
    "IP_ADDRESS": ["登录IP {IP_ADDRESS}", "来自{IP_ADDRESS}的可疑访问", "连续5次失败后封禁{IP_ADDRESS}"],
    "URL": ["个人主页 {URL}", "详见 {URL}", "在 {URL} 发布投诉"],
    "CN_RIC": ["身份证号{CN_RIC}", "身份证号码：{CN_RIC}", "居民身份证 {CN_RIC} 已核验"],
    "pairs": ["{PERSON_NAME}（{EMAIL}）", "{PERSON_NAME}，电话{PHONE}", "{PERSON_NAME}，{ADDRESS}"],
    "openers": ["工单#{N}：", "备注：", "【客服】", "回复：退款 -", "通知：", "跟进{N}："],
    "closers": ["谢谢！", "请核实", "已升级至二线。", "#客服", "🙏", "明天再联系。"],
    "clean": ["发票{INV}已全额支付，共计{PRICE}。", "终端已更新至版本{VER}，运行正常。", "订单号{ORDER}已发货，预计两天送达。",
              "{PRODUCT}已补货，商品编码{SKU}，现价{PRICE}。", "询问{PRODUCT}是否支持固件{VER}。", "对{PRODUCT}很满意，无需处理。参考号{INV}。"],
}
_PHRASINGS: dict[str, dict[str, list[str]]] = {"en": _EN, "de": _DE, "fr": _FR, "es": _ES, "it": _IT, "nl": _NL,
                                               "pt": _PT, "pl": _PL, "ja": _JA, "zh": _ZH}

# Clause joiners (the first letter after a full stop is capitalised) and row endings.
_JOINERS_LATIN = (". ", ". ", "; ", ", ", " - ", " | ", ".\n")
_JOINERS_CJK = {"ja": ("。", "。", "、", " "), "zh": ("。", "。", "，", "；", " ")}

_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"),
    "it": ("gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre",
           "novembre", "dicembre"),
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"),
    "pt": ("janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro",
           "novembro", "dezembro"),
    # Genitive, as dates write it.
    "pl": ("stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia", "września",
           "października", "listopada", "grudnia"),
}
_PRODUCTS = ("Galaxy Tab S9", "ThinkPad X1 Carbon", "Nordic Breeze Deluxe", "Kiosk Pro 3", "AeroPress Go",
             "Summit Trail 45", "Royal Oak Desk", "Aurora Smart Lamp", "Monaco Espresso Machine", "Victoria Sofa Bed",
             "Jackson Hybrid Bike", "Florence Duvet Set", "Berlin Office Chair", "Madison Tote", "Kindle Paperwhite",
             "Pixel Buds Pro", "Sierra Rain Jacket", "Oslo Bookcase", "Charlotte Dinner Set", "Everest 2-Person Tent")
_CURRENCY = {"en_US": "${:,.2f}", "en_GB": "£{:,.2f}", "en_IN": "₹{:,.0f}", "de_DE": "{} €", "fr_FR": "{} €",
             "es_ES": "{} €", "it_IT": "€ {}", "nl_NL": "€ {}", "pt_BR": "R$ {}", "pl_PL": "{} zł",
             "ja_JP": "¥{:,.0f}", "zh_CN": "￥{:,.0f}"}


# --- values ------------------------------------------------------------------------------------

def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _group(s: str, sizes: Sequence[int], sep: str = " ") -> str:
    out, at = [], 0
    for size in sizes:
        out.append(s[at:at + size])
        at += size
    if at < len(s):
        out.append(s[at:])
    return sep.join(p for p in out if p)


def _luhn_number(rng: random.Random, prefix: str, length: int) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def _card(rng: random.Random) -> str:
    # Visa, Mastercard (51-55, 2221-2720), Amex, Discover, JCB, Diners: (prefixes, length).
    prefixes, length = rng.choices(((("4",), 16), (("51", "52", "53", "54", "55", "2221", "2720"), 16), (("34", "37"), 15),
                                    (("6011", "65"), 16), (("3528", "3589"), 16), (("36", "38"), 14)),
                                   (40, 30, 12, 6, 6, 6))[0]
    number = _luhn_number(rng, rng.choice(prefixes), length)
    if rng.random() < 0.4:
        return number
    sep = rng.choice((" ", " ", "-"))
    sizes = {15: (4, 6, 5), 14: (4, 6, 4)}.get(len(number), (4, 4, 4, 4))
    return _group(number, sizes, sep)


def _uk_nino(rng: random.Random) -> str:
    while True:
        prefix = rng.choice("ABCEGHJKLMNOPRSTWXYZ") + rng.choice("ABCEGHJKLMNPRSTWXYZ")
        if prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    number = _digits(rng, 6)
    suffix = rng.choice("ABCD")
    if rng.random() < 0.5:
        return f"{prefix} {number[:2]} {number[2:4]} {number[4:]} {suffix}"
    return f"{prefix}{number}{suffix}"


def _de_idnr(rng: random.Random) -> str:
    while True:
        body = rng.choice("123456789") + _digits(rng, 9)
        number = body + mod_11_10.calc_check_digit(body)
        if idnr.is_valid(number):
            return _group(number, (2, 3, 3, 3)) if rng.random() < 0.3 else number


def _aadhaar(rng: random.Random) -> str:
    while True:
        body = rng.choice("23456789") + _digits(rng, 10)
        number = body + verhoeff.calc_check_digit(body)
        if number != number[::-1]:
            return _group(number, (4, 4, 4)) if rng.random() < 0.6 else number


def _my_number(rng: random.Random) -> str:
    body = _digits(rng, 11)
    number = body + jp_in.calc_check_digit(body)
    return _group(number, (4, 4, 4)) if rng.random() < 0.4 else number


def _cn_ric(fake: Faker) -> str:
    # Faker's; two in three name an area code stdnum does not know, and are drawn again.
    while True:
        number = fake.ssn()
        try:
            return ric.validate(number)
        except Exception:  # stdnum's invalid-number errors, and a KeyError for some areas
            continue


def _fr_nir(fake: Faker, rng: random.Random) -> str:
    while True:
        number = fake.ssn()
        if nir.is_valid(number):
            return _group(number, (1, 2, 2, 2, 3, 3, 2)) if rng.random() < 0.5 else number


def _national_id(kind: str, fake: Faker, rng: random.Random) -> str:
    if kind == "US_SSN":
        return fake.ssn()
    if kind == "UK_NINO":
        return _uk_nino(rng)
    if kind == "IN_AADHAAR":
        return _aadhaar(rng)
    if kind == "DE_IDNR":
        return _de_idnr(rng)
    if kind == "FR_NIR":
        return _fr_nir(fake, rng)
    if kind == "ES_DNI":
        nif = fake.nif()
        return f"{nif[:8]}-{nif[8:]}" if rng.random() < 0.2 else nif
    if kind == "ES_NIE":
        return fake.nie()
    if kind == "IT_CF":
        return fake.ssn()
    if kind == "NL_BSN":
        return fake.ssn()
    if kind == "BR_CPF":
        cpf = fake.cpf()
        return cpf if rng.random() < 0.7 else re.sub(r"\D", "", cpf)
    if kind == "PL_PESEL":
        return fake.pesel()
    if kind == "JP_MY_NUMBER":
        return _my_number(rng)
    if kind == "CN_RIC":
        return _cn_ric(fake)
    raise ValueError(kind)


def _date(fake: Faker, rng: random.Random, locale: str, lang: str) -> str:
    d = fake.date_between(date(1935, 1, 1), date(2025, 12, 31))
    dd, mm, y = d.day, d.month, d.year
    if rng.random() < 0.45:  # in figures, in the locale's order
        if rng.random() < 0.12:
            return d.isoformat()
        if locale == "en_US":
            return rng.choice((f"{mm:02d}/{dd:02d}/{y}", f"{mm}/{dd}/{y}"))
        if lang == "ja":
            return rng.choice((f"{y}/{mm:02d}/{dd:02d}", f"{y}/{mm}/{dd}"))
        if lang == "zh":
            return rng.choice((f"{y}-{mm:02d}-{dd:02d}", f"{y}/{mm}/{dd}", f"{y}.{mm:02d}.{dd:02d}"))
        sep = {"de": ".", "pl": ".", "nl": "-"}.get(lang, "/")
        if lang == "en" and rng.random() < 0.3:
            sep = "-"
        return f"{dd:02d}{sep}{mm:02d}{sep}{y}"
    if lang in _CJK:
        return f"{y}年{mm}月{dd}{rng.choice('日号') if lang == 'zh' and rng.random() < 0.2 else '日'}"
    month = _MONTHS[lang][mm - 1]
    if lang == "en":
        suffix = "th" if 11 <= dd <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(dd % 10, "th")
        if locale == "en_US":
            return rng.choice((f"{month} {dd}, {y}", f"{month} {dd}, {y}", f"{month[:3]} {dd}, {y}", f"{month} {dd}{suffix}, {y}"))
        return rng.choice((f"{dd} {month} {y}", f"{dd} {month} {y}", f"{dd}{suffix} {month} {y}", f"{dd} {month[:3]} {y}"))
    if lang == "de":
        return f"{dd}. {month} {y}"
    if lang == "fr":
        return f"{'1er' if dd == 1 else dd} {month} {y}"
    if lang in ("es", "pt"):
        return f"{dd} de {month} de {y}"
    return f"{dd} {month} {y}"


def _address(fake: Faker, rng: random.Random, locale: str) -> str:
    if locale in ("ja_JP", "zh_CN"):
        whole = fake.address()
        return whole.rsplit(" ", 1)[0] if locale == "zh_CN" else whole
    street = re.sub(r"\s*\n\s*", ", ", fake.street_address().strip())
    roll = rng.random()
    if roll < 0.45:
        return street
    if roll < 0.85:
        return f"{street}, {fake.city()}"
    return re.sub(r"\s*\n\s*", ", ", fake.address().strip())


def _iban(fake: Faker, rng: random.Random, region: str) -> str:
    while True:
        value = fake.iban()
        if value[:2] == region and std_iban.is_valid(value):
            return _group(value, [4] * 9) if rng.random() < 0.5 else value


def _url(fake: Faker, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return fake.url()
    if roll < 0.8:
        return fake.uri()
    site = rng.choice(("https://www.facebook.com/", "https://www.instagram.com/", "https://www.linkedin.com/in/",
                       "https://github.com/"))
    return site + fake.user_name()


def _value(kind: str, fake: Faker, rng: random.Random, locale: str) -> str:
    lang, region, _ = _LOCALES[locale]
    if kind == "PERSON_NAME":
        return fake.name()
    if kind == "ADDRESS":
        return _address(fake, rng, locale)
    if kind == "EMAIL":
        return fake.free_email() if rng.random() < 0.3 else fake.email()
    if kind == "PHONE":
        return fake.phone_number()
    if kind == "CREDIT_CARD":
        return _card(rng)
    if kind == "IBAN":
        return _iban(fake, rng, region)
    if kind == "DATE":
        return _date(fake, rng, locale, lang)
    if kind == "IP_ADDRESS":
        return fake.ipv6() if rng.random() < 0.15 else fake.ipv4_public()
    if kind == "URL":
        return _url(fake, rng)
    return _national_id(kind, fake, rng)


def _lookalike(key: str, rng: random.Random, locale: str) -> str:
    if key == "N":
        return _digits(rng, rng.choice((4, 5, 6))).lstrip("0") or "7"
    if key == "INV":
        return rng.choice(("INV-{}-{}", "INV{}{}", "RE-{}-{}", "F{}/{}")).format(rng.randint(2019, 2026), _digits(rng, 6))
    if key == "ORDER":
        return _luhn_number(rng, rng.choice("3456"), 16)
    if key == "VER":
        return rng.choice((f"{rng.randint(100, 131)}.0.{rng.randint(4000, 6999)}.{rng.randint(10, 199)}",
                           f"10.0.{rng.randint(19041, 22631)}.{rng.randint(100, 4000)}",
                           f"v{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 12)}",
                           f"{rng.randint(14, 18)}.{rng.randint(0, 7)}.{rng.randint(1, 9)}"))
    if key == "SKU":
        return rng.choice(("SKU-{}-{}-{}", "ART-{}{}-{}", "P/N {}-{}{}")).format(
            _digits(rng, 2), _digits(rng, 4), rng.choice(("XL", "B", "M", "07", "R")))
    if key == "PRICE":
        amount = rng.randint(499, 249_999) / 100
        fmt = _CURRENCY[locale]
        if "{:" in fmt:
            return fmt.format(amount)
        # Decimal comma, thin grouping by locale.
        text = f"{amount:,.2f}".replace(",", "\u00a0" if locale in ("fr_FR", "pl_PL") else ".")
        text = text[:-3] + "," + text[-2:]
        return fmt.format(text)
    if key == "PRODUCT":
        return rng.choice(_PRODUCTS)
    raise KeyError(key)


# --- rows --------------------------------------------------------------------------------------

_SLOT = re.compile(r"\{([A-Z_]+)\}")
_LOOKALIKES = frozenset({"N", "INV", "ORDER", "VER", "SKU", "PRICE", "PRODUCT"})


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.gold: list[Span] = []

    def add(self, text: str, kind: str | None = None) -> None:
        if kind is not None:
            self.gold.append((self.size, self.size + len(text), kind))
        self.parts.append(text)
        self.size += len(text)

    def fill(self, phrasing: str, values: dict[str, str], rng: random.Random, locale: str, capital: bool) -> None:
        at = 0
        for m in _SLOT.finditer(phrasing):
            literal = phrasing[at:m.start()]
            if capital and literal:
                literal = literal[0].upper() + literal[1:]
            capital = False
            self.add(literal)
            key = m.group(1)
            if key in _LOOKALIKES:
                self.add(_lookalike(key, rng, locale))
            else:
                self.add(values[key], key)
            at = m.end()
        tail = phrasing[at:]
        if capital and tail:
            tail = tail[0].upper() + tail[1:]
        self.add(tail)

    def text(self) -> str:
        return "".join(self.parts)


def _kinds(rng: random.Random, locale: str) -> list[str]:
    _, region, ids = _LOCALES[locale]
    pool = {k: w for k, w in _WEIGHTS.items() if k != "IBAN" or region in _HAS_IBAN}
    count = rng.choices((1, 2, 3, 4), (30, 35, 25, 10))[0]
    chosen: list[str] = []
    while len(chosen) < count:
        names = [k for k in pool if k not in chosen]
        pick = rng.choices(names, [pool[k] for k in names])[0]
        chosen.append(pick)
    return [rng.choice(ids) if k == "ID" else k for k in chosen]


def _row(fake: Faker, rng: random.Random, locale: str) -> tuple[str, list[Span]]:
    lang = _LOCALES[locale][0]
    phr = _PHRASINGS[lang]
    cjk = lang in _CJK
    b = _Builder()
    clean = rng.random() < _CLEAN_SHARE
    clauses: list[tuple[str, dict[str, str]]] = []
    if clean:
        for template in rng.sample(phr["clean"], rng.choice((1, 1, 2))):
            clauses.append((template, {}))
    else:
        kinds = _kinds(rng, locale)
        if "PERSON_NAME" in kinds and rng.random() < _PAIR_SHARE:
            partners = [k for k in ("EMAIL", "PHONE", "ADDRESS") if k in kinds]
            if partners:
                partner = rng.choice(partners)
                template = next(p for p in phr["pairs"] if "{" + partner + "}" in p)
                clauses.append((template, {k: _value(k, fake, rng, locale) for k in ("PERSON_NAME", partner)}))
                kinds = [k for k in kinds if k not in ("PERSON_NAME", partner)]
        for kind in kinds:
            clauses.append((rng.choice(phr[kind]), {kind: _value(kind, fake, rng, locale)}))
        rng.shuffle(clauses)
        if rng.random() < _DISTRACTOR_SHARE:
            clauses.insert(rng.randrange(len(clauses) + 1), (rng.choice(phr["clean"]).rstrip(".。"), {}))
    roll = rng.random()
    opener = rng.choice(phr["openers"]) if roll < 0.35 else None
    closer = rng.choice(phr["closers"]) if 0.2 < roll < 0.55 else None
    capital = True
    if opener:
        b.fill(opener, {}, rng, locale, capital=False)
        b.add("" if cjk and rng.random() < 0.5 else " ")
    joiners = _JOINERS_CJK[lang] if cjk else _JOINERS_LATIN
    for i, (template, values) in enumerate(clauses):
        if i:
            joiner = rng.choice(joiners)
            b.add(joiner)
            capital = joiner.startswith(".")
        template = template.rstrip(".。") if i < len(clauses) - 1 else template
        b.fill(template, values, rng, locale, capital=capital and not cjk)
        capital = False
    text_end = b.text()[-1:] if b.size else ""
    if closer:
        if text_end not in ".!?。！":
            b.add("。" if cjk else rng.choice((". ", " - ", " ")))
        else:
            b.add("" if cjk else " ")
        b.add(closer)
    elif text_end not in ".!?。！" and rng.random() < 0.6:
        b.add("。" if cjk else ".")
    return b.text(), b.gold


def labelled_rows(n: int, seed: int = 7) -> list[tuple[str, str, list[Span]]]:
    """`n` rows of (locale, text, gold spans [(start, end, PiiType name)]), round the
    locales in turn; the same for the same seed (and Faker version)."""
    rng = random.Random(seed)
    fakers = {}
    for i, loc in enumerate(LOCALES):
        fake = Faker(loc)
        fake.seed_instance(seed * 1000 + i)
        fakers[loc] = fake
    out = []
    for i in range(n):
        loc = LOCALES[i % len(LOCALES)]
        text, gold = _row(fakers[loc], rng, loc)
        for s, e, _ in gold:  # the gold must be what it says
            assert 0 <= s < e <= len(text), (text, gold)
        out.append((loc, text, gold))
    return out


# --- scoring -----------------------------------------------------------------------------------

# Predicted types that count for a gold type besides its own: a city or a postcode is part of
# an address; a date of birth is a date.
COMPATIBLE: dict[str, frozenset[str]] = {
    "ADDRESS": frozenset({"ADDRESS", "LOCATION", "POSTAL_CODE"}),
    "DATE": frozenset({"DATE", "DATE_OF_BIRTH"}),
}
# The share of a gold span a detector's spans must cover for it to count as found.
COVER = 0.5


def _compatible(gold_type: str) -> frozenset[str]:
    return COMPATIBLE.get(gold_type, frozenset({gold_type}))


def _covered(span: Span, preds: Iterable[Span], types: frozenset[str] | None) -> float:
    s, e, _ = span
    hit = bytearray(e - s)
    for ps, pe, pt in preds:
        if (types is None or pt in types) and ps < e and pe > s:
            for i in range(max(ps, s), min(pe, e)):
                hit[i - s] = 1
    return sum(hit) / (e - s)


def score(rows: Sequence[tuple[str, str, Sequence[Span]]], predictions: Sequence[Sequence[Span]],
          claimed: Iterable[str], examples: int = 4,
          example_locales_for: Iterable[str] = ("PERSON_NAME", "ADDRESS")) -> dict[str, Any]:
    """Per gold type: recall (gold spans ≥ `COVER` covered by predicted spans of a compatible
    type) and masked recall (covered by predicted spans of any type: what would not leak); per
    predicted type: precision (predicted spans that overlap a gold span they are compatible
    with, over all predicted spans of that type). Per locale, the same recalls. `claimed`
    are the types the detector says it finds (a gold type outside them is reported, recall
    0, but flagged). Up to `examples` missed gold spans per type, and per (locale, type) for
    the types in `example_locales_for`."""
    claimed = frozenset(claimed)
    per_locale_examples = frozenset(example_locales_for)
    gold_n: Counter[str] = Counter()
    found: Counter[str] = Counter()
    masked: Counter[str] = Counter()
    pred_n: Counter[str] = Counter()
    pred_ok: Counter[str] = Counter()
    by_locale: dict[str, dict[str, Counter[str]]] = defaultdict(lambda: {"gold": Counter(), "found": Counter(), "masked": Counter()})
    missed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    missed_locale: dict[str, list[dict[str, Any]]] = defaultdict(list)
    clean_rows = clean_flagged = 0
    for (loc, text, gold), preds in zip(rows, predictions, strict=True):
        if not gold:
            clean_rows += 1
            clean_flagged += bool(preds)
        per = by_locale[loc]
        for span in gold:
            kind = span[2]
            gold_n[kind] += 1
            per["gold"][kind] += 1
            ok = _covered(span, preds, _compatible(kind)) >= COVER
            any_ok = _covered(span, preds, None) >= COVER
            found[kind] += ok
            masked[kind] += any_ok
            per["found"][kind] += ok
            per["masked"][kind] += any_ok
            if not ok:
                example = {"locale": loc, "text": text, "gold": [span[0], span[1], kind], "value": text[span[0]:span[1]],
                           "predicted": [[s, e, t, text[s:e]] for s, e, t in preds if s < span[1] and e > span[0]]}
                if len(missed[kind]) < examples:
                    missed[kind].append(example)
                if kind in per_locale_examples and len(missed_locale[f"{loc}/{kind}"]) < examples:
                    missed_locale[f"{loc}/{kind}"].append(example)
        for ps, pe, pt in preds:
            pred_n[pt] += 1
            pred_ok[pt] += any(ps < ge and pe > gs and pt in _compatible(gt) for gs, ge, gt in gold)
    per_type: dict[str, dict[str, Any]] = {}
    for kind in sorted(set(gold_n) | set(pred_n)):
        entry: dict[str, Any] = {"gold": gold_n[kind], "claimed": kind in claimed}
        if gold_n[kind]:
            entry.update(found=found[kind], recall=found[kind] / gold_n[kind], masked_recall=masked[kind] / gold_n[kind])
        entry["predicted"] = pred_n[kind]
        if pred_n[kind]:
            entry.update(correct=pred_ok[kind], precision=pred_ok[kind] / pred_n[kind])
        per_type[kind] = entry
    total_gold = sum(gold_n.values())
    locales = {}
    for loc in sorted(by_locale):
        per = by_locale[loc]
        g = sum(per["gold"].values())
        locales[loc] = {
            "gold": g,
            "recall": sum(per["found"].values()) / g if g else None,
            "masked_recall": sum(per["masked"].values()) / g if g else None,
            "types": {k: {"gold": per["gold"][k], "recall": per["found"][k] / per["gold"][k],
                          "masked_recall": per["masked"][k] / per["gold"][k]} for k in sorted(per["gold"])},
        }
    return {
        "per_type": per_type,
        "gold": total_gold,
        "recall": sum(found.values()) / total_gold if total_gold else None,
        "masked_recall": sum(masked.values()) / total_gold if total_gold else None,
        "precision": sum(pred_ok.values()) / sum(pred_n.values()) if pred_n else None,
        "clean_rows": clean_rows,
        "clean_rows_flagged": clean_flagged,
        "per_locale": locales,
        "missed": dict(missed),
        "missed_by_locale": dict(missed_locale),
    }

