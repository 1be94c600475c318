import { t } from './i18n.js';
import { h } from './dom.js';
export default function view(main) { main.append(h('h1', {}, t('nav.devices'))); }
