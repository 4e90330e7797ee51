/** The sidebar tab's icon: a speech bubble with sparkles, coloured by the theme (jp-icon3). */

import { LabIcon } from '@jupyterlab/ui-components';

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 3h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2h-7.6l-4.7 3.8A.8.8 0 0 1 6.4 20v-3H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2zm0 2v10h4.4v2.3l2.9-2.3H20V5H4z"/>
    <path d="M12 6.2l.9 2.4 2.4.9-2.4.9-.9 2.4-.9-2.4-2.4-.9 2.4-.9zM16.6 10.6l.45 1.15 1.15.45-1.15.45-.45 1.15-.45-1.15-1.15-.45 1.15-.45z"/>
  </g>
</svg>`;

export const assistantIcon = new LabIcon({ name: 'jupyter-assistant:icon', svgstr: SVG });
